# Included by the top CMakeLists.txt. Finds everything the port program needs
# (a C compiler, CPython with its embedding files, libuv, Erlang's erl_interface)
# by CMake's own means, whatever installed them, and stops with ONE message that
# names everything missing. Never calls a system package manager.

# Which Python: -DPython3_EXECUTABLE, else $PYPORT_PYTHON, else Debian's
# /usr/bin/python3 when there is one (pyenv shims come first on PATH and may lack a
# shared libpython), else whatever FindPython3 finds on PATH.
if(NOT DEFINED Python3_EXECUTABLE)
  if(DEFINED ENV{PYPORT_PYTHON} AND NOT "$ENV{PYPORT_PYTHON}" STREQUAL "")
    set(Python3_EXECUTABLE "$ENV{PYPORT_PYTHON}")
  elseif(EXISTS /usr/bin/python3)
    set(Python3_EXECUTABLE /usr/bin/python3)
  endif()
endif()

set(PYPORT_MISSING "")

# The port program uses eventfd, prctl and /proc: Linux only.
if(NOT CMAKE_SYSTEM_NAME STREQUAL "Linux")
  message(FATAL_ERROR "pyport runs on Linux only (this is ${CMAKE_SYSTEM_NAME}).")
endif()

# The project declares no language so that a missing compiler lands in the list
# below instead of stopping CMake on its own.
include(CheckLanguage)
check_language(C)
if(CMAKE_C_COMPILER)
  enable_language(C)
  find_package(Threads QUIET)
else()
  list(APPEND PYPORT_MISSING
    "a C11 compiler (gcc or clang: name it with CC=/path/to/cc)")
endif()

find_package(Python3 3.11 QUIET COMPONENTS Interpreter Development.Embed)
if(NOT Python3_FOUND)
  if(DEFINED Python3_EXECUTABLE)
    set(_py_tried "${Python3_EXECUTABLE}")
  else()
    set(_py_tried "python3 on PATH")
  endif()
  if(Python3_VERSION AND Python3_VERSION VERSION_LESS 3.11)
    set(_py_what "${Python3_EXECUTABLE} is Python ${Python3_VERSION}")
  elseif(NOT Python3_Interpreter_FOUND)
    set(_py_what "no CPython 3.11 or newer at ${_py_tried}")
  else()
    set(_py_what "${Python3_EXECUTABLE} (Python ${Python3_VERSION}) has no embedding files")
  endif()
  list(APPEND PYPORT_MISSING
    "CPython 3.11+ with its development files (Python.h, libpython): ${_py_what} \
(Debian/Ubuntu: python3-dev, Fedora/RHEL: python3-devel, Alpine: python3-dev, \
choose the interpreter with PYPORT_PYTHON=/path/to/python3)")
endif()

find_package(LibUV QUIET)
if(NOT LibUV_FOUND)
  list(APPEND PYPORT_MISSING
    "libuv 1.x, uv.h and the library (Debian/Ubuntu: libuv1-dev, Fedora/RHEL: libuv-devel, \
Alpine: libuv-dev, or set LibUV_ROOT to its prefix)")
endif()

find_package(ErlInterface QUIET)
if(NOT ErlInterface_FOUND)
  if(ERL_INTERFACE_DIR)
    set(_ei_where "looked in ${ERL_INTERFACE_DIR}")
  elseif(ERL_EXECUTABLE)
    set(_ei_where "${ERL_EXECUTABLE} has no erl_interface application")
  else()
    set(_ei_where "no erl on PATH")
  endif()
  list(APPEND PYPORT_MISSING
    "Erlang/OTP's erl_interface, ei.h and libei.a: ${_ei_where} (part of a full OTP install, \
as kerl, asdf and the official images have, Debian/Ubuntu: erlang-dev, Fedora/RHEL: \
erlang-erl_interface, or set ERL_INTERFACE_DIR)")
endif()

if(NOT PYPORT_PORT_ONLY AND NOT (ERLC_EXECUTABLE AND ESCRIPT_EXECUTABLE))
  list(APPEND PYPORT_MISSING
    "Erlang/OTP's erlc and escript on PATH (to build and test the application here)")
endif()

if(PYPORT_MISSING)
  list(JOIN PYPORT_MISSING "\n  - " _list)
  message(FATAL_ERROR
    "pyport cannot be built; missing build dependencies:\n"
    "  - ${_list}\n"
    "Install what is missing with your system's package manager and build again.")
endif()

# How the port program links libpython: PyportPython::Python. Where Python's
# static archive exists (Debian's libpython3.x-dev ships it), the program links
# it into a non-PIE executable, as Debian's own python3 does: a cold start then
# skips relocating the shared library's 1.1 MiB of data, and main.c fills those
# pages in with one madvise call instead of taking a fault per page (together
# about 3 ms of a context's start on the 2-core test machine). Only the Python
# API is exported to the extension modules it loads (python-symbols.list).
# -DPYPORT_STATIC_LIBPYTHON=OFF, or no archive, links the shared library.
option(PYPORT_STATIC_LIBPYTHON "Link libpython's static archive into the port program when it exists" ON)
set(_pyport_libpython_a "")
if(PYPORT_STATIC_LIBPYTHON)
  execute_process(
    COMMAND ${Python3_EXECUTABLE} -c
      "import sysconfig as s; v = s.get_config_var; print(v('LIBPL') + '/' + v('LIBRARY')); print(' '.join([v('LIBS') or '', v('MODLIBS') or '', v('SYSLIBS') or '']))"
    OUTPUT_VARIABLE _pyport_py_link OUTPUT_STRIP_TRAILING_WHITESPACE
    RESULT_VARIABLE _pyport_py_rc)
  if(_pyport_py_rc EQUAL 0)
    string(REPLACE "\n" ";" _pyport_py_link "${_pyport_py_link}")
    list(GET _pyport_py_link 0 _pyport_libpython_a)
    list(GET _pyport_py_link 1 _pyport_py_libs)
    separate_arguments(_pyport_py_libs UNIX_COMMAND "${_pyport_py_libs}")
    list(REMOVE_DUPLICATES _pyport_py_libs)
    if(NOT _pyport_libpython_a MATCHES "\\.a$" OR NOT EXISTS "${_pyport_libpython_a}")
      set(_pyport_libpython_a "")
    endif()
  endif()
endif()
add_library(PyportPython::Python INTERFACE IMPORTED)
if(_pyport_libpython_a)
  message(STATUS "pyport: linking ${_pyport_libpython_a} (static libpython)")
  set_target_properties(PyportPython::Python PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${Python3_INCLUDE_DIRS}"
    INTERFACE_COMPILE_DEFINITIONS PYPORT_STATIC_LIBPYTHON=1
    INTERFACE_LINK_LIBRARIES "${_pyport_libpython_a};${_pyport_py_libs}"
    INTERFACE_LINK_OPTIONS
      "-no-pie;-Wl,--dynamic-list=${PROJECT_SOURCE_DIR}/port/python-symbols.list")
else()
  message(STATUS "pyport: linking the shared libpython")
  set_target_properties(PyportPython::Python PROPERTIES INTERFACE_LINK_LIBRARIES Python3::Python)
endif()
