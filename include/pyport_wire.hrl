%% Wire constants of the pyport protocol for Erlang. They mirror
%% include/pyport/wire.h; tests/test_wire.escript checks both agree.
-define(PYPORT_PROTOCOL_VERSION, 2).
-define(PYPORT_BATCH_TAG, 66).
-define(PYPORT_DEFAULT_MAX_FRAME, (256 * 1024 * 1024)).
-define(PYPORT_HARD_MAX_FRAME, (1024 * 1024 * 1024)).
-define(PYPORT_DEFAULT_MAX_DEPTH, 1000).
-define(PYPORT_DEFAULT_MAX_NESTING, 200).
-define(PYPORT_ATTACH_ARGS_TAG, 1).
-define(PYPORT_ATTACH_MAX_ARGS, 65536).
-define(PYPORT_EXIT_OK, 0).
-define(PYPORT_EXIT_USAGE, 64).
-define(PYPORT_EXIT_PYTHON, 65).
-define(PYPORT_EXIT_FRAMING, 66).
-define(PYPORT_EXIT_OOM, 67).
-define(PYPORT_EXIT_IO, 68).
-define(PYPORT_EXIT_LOST, 69).
-define(PYPORT_FRAME_HEADER_BYTES, 4).
-define(PYPORT_OVERSIZE_PEEK_BYTES, 512).
