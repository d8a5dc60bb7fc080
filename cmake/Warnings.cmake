# pyport_warnings(target): the project's warning set; -Werror unless PYPORT_WERROR=OFF.
option(PYPORT_WERROR "Treat C warnings as errors" ON)
function(pyport_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wshadow -Wstrict-prototypes
                                           -Wno-missing-field-initializers)
  if(PYPORT_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
