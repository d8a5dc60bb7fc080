# pyport_sanitize(target): AddressSanitizer + UndefinedBehaviorSanitizer, with
# undefined behaviour made fatal so a test run cannot pass over it.
set(PYPORT_SANITIZE_FLAGS -fsanitize=address,undefined -fno-sanitize-recover=all
                          -fno-omit-frame-pointer)
function(pyport_sanitize target)
  target_compile_options(${target} PRIVATE ${PYPORT_SANITIZE_FLAGS})
  target_link_options(${target} PRIVATE ${PYPORT_SANITIZE_FLAGS})
endfunction()
