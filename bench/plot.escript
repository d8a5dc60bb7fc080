#!/usr/bin/env escript
%% Draws one benchmark run (bench/results/*.term) as an SVG bar chart: for each
%% figure, pyport and the routed echo as multiples of the direct echo floor
%% (throughput: floor / pyport, so that lower is better everywhere).
%% Usage: plot.escript RESULT.term OUT.svg
-mode(compile).

main([In, Out]) ->
    {ok, [T]} = file:consult(In),
    #{latency := L, payload := P, throughput := Tp} = T,
    Lat = fun(V, K) -> maps:get(K, maps:get(V, L)) end,
    Pay = fun(Name, V) -> maps:get(p50, maps:get(V, maps:get(Name, P))) end,
    Rows = [{"call p50", Lat(pyport, p50) / Lat(echo_direct, p50),
             Lat(echo_routed, p50) / Lat(echo_direct, p50)},
            {"call p99", Lat(pyport, p99) / Lat(echo_direct, p99),
             Lat(echo_routed, p99) / Lat(echo_direct, p99)},
            {"64 callers, 1 ctx", ratio(Tp, echo_1, pyport_1), 1.0},
            {"64 callers, N ctx", ratio(Tp, echo_n, pyport_n), 1.0},
            {"1 MiB binary", Pay(binary_1mib, pyport) / Pay(binary_1mib, echo_direct),
             Pay(binary_1mib, echo_routed) / Pay(binary_1mib, echo_direct)},
            {"100k-int list", Pay(list_100k, pyport) / Pay(list_100k, echo_direct),
             Pay(list_100k, echo_routed) / Pay(list_100k, echo_direct)},
            {"10k-key map", Pay(map_10k, pyport) / Pay(map_10k, echo_direct),
             Pay(map_10k, echo_routed) / Pay(map_10k, echo_direct)}],
    %% Runs with the size sweep add its largest binary (no routed echo there).
    SweepRows = case T of
                    #{sweep := #{67108864 := #{pyport := SP, echo_direct := SD}}} ->
                        [{"64 MiB binary", SP / SD, 0.0}];
                    _ ->
                        []
                end,
    #{git := #{commit := Commit}, date := Date} = T,
    ok = file:write_file(Out, svg(Rows ++ SweepRows, Date ++ " " ++ Commit)).

ratio(Tp, Floor, Py) ->
    maps:get(median, maps:get(Floor, Tp)) / maps:get(median, maps:get(Py, Tp)).

svg(Rows, Label) ->
    W = 720, RowH = 44, Top = 50, Left = 150, Scale = 120,   % pixels per 1.0x
    H = Top + RowH * length(Rows) + 40,
    Bars = lists:append(
             [begin
                  Y = Top + I * RowH,
                  [text(8, Y + 22, Name),
                   rect(Left, Y + 4, Py * Scale, 16, "#3b6ea8"),
                   text(Left + Py * Scale + 6, Y + 17, fmt(Py)),
                   rect(Left, Y + 22, Ro * Scale, 12, "#b0b0b0"),
                   text(Left + Ro * Scale + 6, Y + 33, fmt(Ro))]
              end || {I, {Name, Py, Ro}} <- lists:zip(lists:seq(0, length(Rows) - 1), Rows)]),
    Grid = [[line(Left + X * Scale, Top - 6, Left + X * Scale, H - 34),
             text(Left + X * Scale - 8, H - 20, integer_to_list(X) ++ "x")]
            || X <- lists:seq(0, 4)],
    iolist_to_binary(
      [io_lib:format("<svg xmlns='http://www.w3.org/2000/svg' width='~b' height='~b' "
                     "font-family='sans-serif' font-size='12'>~n", [W, H]),
       "<rect width='100%' height='100%' fill='white'/>\n",
       text(8, 20, "pyport (blue) and the routed echo (grey), as multiples of the direct "
                   "C echo floor; lower is better"),
       text(8, 36, "run " ++ Label),
       Grid, Bars, "</svg>\n"]).

fmt(X) -> io_lib:format("~.2fx", [X]).
rect(X, Y, W, H, C) ->
    io_lib:format("<rect x='~.1f' y='~b' width='~.1f' height='~b' fill='~s'/>~n", [float(X), Y, float(W), H, C]).
line(X1, Y1, X2, Y2) ->
    io_lib:format("<line x1='~.1f' y1='~b' x2='~.1f' y2='~b' stroke='#ddd'/>~n", [float(X1), Y1, float(X2), Y2]).
text(X, Y, S) ->
    io_lib:format("<text x='~.1f' y='~b'>~ts</text>~n", [float(X), Y, S]).
