# Finds libuv through pkg-config. Defines the imported target LibUV::uv.
find_package(PkgConfig REQUIRED)
pkg_check_modules(LIBUV QUIET IMPORTED_TARGET libuv)

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(LibUV REQUIRED_VARS LIBUV_FOUND VERSION_VAR LIBUV_VERSION)

if(LibUV_FOUND AND NOT TARGET LibUV::uv)
  add_library(LibUV::uv INTERFACE IMPORTED)
  target_link_libraries(LibUV::uv INTERFACE PkgConfig::LIBUV)
endif()
