# Finds erl_interface (ei) of an Erlang/OTP installation, whatever installed it:
# ERL_INTERFACE_DIR (cache or environment), else ERLANG_LIB_DIR_erl_interface (set
# by rebar3 for its hooks), else the erl on PATH asked for code:lib_dir(erl_interface).
# Defines the imported target ErlInterface::ei (static libei.a, needs pthread) and
# ERL_EXECUTABLE, ERLC_EXECUTABLE, ESCRIPT_EXECUTABLE when those are on PATH.
find_program(ERL_EXECUTABLE erl)
find_program(ERLC_EXECUTABLE erlc)
find_program(ESCRIPT_EXECUTABLE escript)

if(NOT ERL_INTERFACE_DIR)
  if(DEFINED ENV{ERL_INTERFACE_DIR} AND NOT "$ENV{ERL_INTERFACE_DIR}" STREQUAL "")
    set(ERL_INTERFACE_DIR "$ENV{ERL_INTERFACE_DIR}")
  elseif(DEFINED ENV{ERLANG_LIB_DIR_erl_interface}
         AND NOT "$ENV{ERLANG_LIB_DIR_erl_interface}" STREQUAL "")
    set(ERL_INTERFACE_DIR "$ENV{ERLANG_LIB_DIR_erl_interface}")
  elseif(ERL_EXECUTABLE)
    execute_process(
      COMMAND ${ERL_EXECUTABLE} -noshell -eval
              "case code:lib_dir(erl_interface) of D when is_list(D) -> io:format(\"~s\", [D]); _ -> ok end, halt()."
      OUTPUT_VARIABLE _ei_dir
      RESULT_VARIABLE _ei_rc
      OUTPUT_STRIP_TRAILING_WHITESPACE)
    if(_ei_rc EQUAL 0 AND NOT _ei_dir STREQUAL "")
      set(ERL_INTERFACE_DIR "${_ei_dir}")
    endif()
  endif()
endif()

find_path(ERL_INTERFACE_INCLUDE_DIR ei.h HINTS ${ERL_INTERFACE_DIR}/include NO_DEFAULT_PATH)
find_library(ERL_INTERFACE_EI_LIBRARY NAMES libei.a ei HINTS ${ERL_INTERFACE_DIR}/lib
             NO_DEFAULT_PATH)

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(ErlInterface
  REQUIRED_VARS ERL_INTERFACE_EI_LIBRARY ERL_INTERFACE_INCLUDE_DIR)

if(ErlInterface_FOUND AND NOT TARGET ErlInterface::ei)
  find_package(Threads REQUIRED)
  add_library(ErlInterface::ei STATIC IMPORTED)
  set_target_properties(ErlInterface::ei PROPERTIES
    IMPORTED_LOCATION ${ERL_INTERFACE_EI_LIBRARY}
    INTERFACE_INCLUDE_DIRECTORIES ${ERL_INTERFACE_INCLUDE_DIR}
    INTERFACE_LINK_LIBRARIES Threads::Threads)
endif()
