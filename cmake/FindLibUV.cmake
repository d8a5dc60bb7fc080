# Finds libuv: through pkg-config when there is one, else by its header and library
# in the usual places (or under LibUV_ROOT). Defines the imported target LibUV::uv.
find_package(PkgConfig QUIET)
if(PKG_CONFIG_FOUND)
  pkg_check_modules(PC_LIBUV QUIET IMPORTED_TARGET libuv)
endif()

if(PC_LIBUV_FOUND)
  set(LIBUV_LINK PkgConfig::PC_LIBUV)
  set(LIBUV_VERSION ${PC_LIBUV_VERSION})
else()
  find_path(LIBUV_INCLUDE_DIR uv.h)
  find_library(LIBUV_LIBRARY NAMES uv libuv)
  if(LIBUV_INCLUDE_DIR AND LIBUV_LIBRARY)
    set(LIBUV_LINK ${LIBUV_LIBRARY})
    if(EXISTS ${LIBUV_INCLUDE_DIR}/uv/version.h)
      file(STRINGS ${LIBUV_INCLUDE_DIR}/uv/version.h _uv_v
           REGEX "define UV_VERSION_(MAJOR|MINOR|PATCH) ")
      string(REGEX REPLACE ".*MAJOR ([0-9]+).*MINOR ([0-9]+).*PATCH ([0-9]+).*" "\\1.\\2.\\3"
             LIBUV_VERSION "${_uv_v}")
    endif()
  endif()
endif()

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(LibUV REQUIRED_VARS LIBUV_LINK VERSION_VAR LIBUV_VERSION)

if(LibUV_FOUND AND NOT TARGET LibUV::uv)
  add_library(LibUV::uv INTERFACE IMPORTED)
  target_link_libraries(LibUV::uv INTERFACE ${LIBUV_LINK})
  if(NOT PC_LIBUV_FOUND)
    target_include_directories(LibUV::uv INTERFACE ${LIBUV_INCLUDE_DIR})
  endif()
endif()
