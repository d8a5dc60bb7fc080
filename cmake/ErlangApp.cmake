# Included by the top CMakeLists.txt. Compiles src/ into the OTP application directory ${PYPORT_APP_DIR}
# (ebin/*.beam + ebin/pyport.app) and, for sanitizer runs, a copy of ebin in
# ${PYPORT_ASAN_APP_DIR}. Warnings are errors.
file(GLOB PYPORT_ERL_SOURCES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/src/*.erl)
file(GLOB PYPORT_ERL_HEADERS CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/include/*.hrl)

set(PYPORT_EBIN ${PYPORT_APP_DIR}/ebin)
set(PYPORT_BEAMS "")
set(PYPORT_MODULES "")
foreach(src ${PYPORT_ERL_SOURCES})
  get_filename_component(mod ${src} NAME_WE)
  set(beam ${PYPORT_EBIN}/${mod}.beam)
  add_custom_command(
    OUTPUT ${beam}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${PYPORT_EBIN}
    COMMAND ${ERLC_EXECUTABLE} +debug_info +warnings_as_errors +warn_export_vars
            +warn_unused_import -I ${PROJECT_SOURCE_DIR}/include -o ${PYPORT_EBIN} ${src}
    DEPENDS ${src} ${PYPORT_ERL_HEADERS}
    COMMENT "erlc ${mod}.erl"
    VERBATIM)
  list(APPEND PYPORT_BEAMS ${beam})
  list(APPEND PYPORT_MODULES ${mod})
endforeach()

# pyport.app from pyport.app.src, with the module list filled in.
list(JOIN PYPORT_MODULES "," PYPORT_MODULE_LIST)
set(PYPORT_APP_FILE ${PYPORT_EBIN}/pyport.app)
add_custom_command(
  OUTPUT ${PYPORT_APP_FILE}
  COMMAND ${ESCRIPT_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tools/make_app.escript
          ${PROJECT_SOURCE_DIR}/src/pyport.app.src ${PYPORT_APP_FILE} ${PYPORT_MODULE_LIST}
  DEPENDS ${PROJECT_SOURCE_DIR}/src/pyport.app.src
          ${PROJECT_SOURCE_DIR}/tools/make_app.escript
  COMMENT "pyport.app"
  VERBATIM)

add_custom_target(pyport_erl ALL DEPENDS ${PYPORT_BEAMS} ${PYPORT_APP_FILE})

if(PYPORT_ASAN_TESTS)
  add_custom_target(pyport_erl_asan ALL
    COMMAND ${CMAKE_COMMAND} -E copy_directory ${PYPORT_EBIN} ${PYPORT_ASAN_APP_DIR}/ebin
    DEPENDS pyport_erl
    COMMENT "ebin for the sanitizer application directory")
endif()
