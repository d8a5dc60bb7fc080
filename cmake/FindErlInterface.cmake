# Finds erl_interface (ei) of the Erlang/OTP on PATH, or of ERL_INTERFACE_DIR.
# Defines the imported target ErlInterface::ei (static libei.a, needs pthread)
# and ERL_EXECUTABLE, ERLC_EXECUTABLE, ESCRIPT_EXECUTABLE.
find_program(ERL_EXECUTABLE erl)
find_program(ERLC_EXECUTABLE erlc)
find_program(ESCRIPT_EXECUTABLE escript)

if(NOT ERL_INTERFACE_DIR AND ERL_EXECUTABLE)
  execute_process(
    COMMAND ${ERL_EXECUTABLE} -noshell -eval
            "io:format(\"~s\", [code:lib_dir(erl_interface)]), halt()."
    OUTPUT_VARIABLE ERL_INTERFACE_DIR
    RESULT_VARIABLE _ei_rc
    OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT _ei_rc EQUAL 0)
    unset(ERL_INTERFACE_DIR)
  endif()
endif()

find_path(ERL_INTERFACE_INCLUDE_DIR ei.h HINTS ${ERL_INTERFACE_DIR}/include NO_DEFAULT_PATH)
find_library(ERL_INTERFACE_EI_LIBRARY NAMES libei.a ei HINTS ${ERL_INTERFACE_DIR}/lib NO_DEFAULT_PATH)

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(ErlInterface
  REQUIRED_VARS ERL_INTERFACE_EI_LIBRARY ERL_INTERFACE_INCLUDE_DIR ERL_EXECUTABLE ERLC_EXECUTABLE
                ESCRIPT_EXECUTABLE)

if(ErlInterface_FOUND AND NOT TARGET ErlInterface::ei)
  find_package(Threads REQUIRED)
  add_library(ErlInterface::ei STATIC IMPORTED)
  set_target_properties(ErlInterface::ei PROPERTIES
    IMPORTED_LOCATION ${ERL_INTERFACE_EI_LIBRARY}
    INTERFACE_INCLUDE_DIRECTORIES ${ERL_INTERFACE_INCLUDE_DIR}
    INTERFACE_LINK_LIBRARIES Threads::Threads)
endif()
