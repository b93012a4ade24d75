#!/usr/bin/env escript
-mode(compile).
%% Spawn N idle processes (each waiting in receive), then stop them.
%% Prints one JSON line: us_per_spawn, bytes_per_process, teardown_us_per_process.
main([NStr]) ->
    N = list_to_integer(NStr),
    erlang:garbage_collect(),
    MemBefore = erlang:memory(total),
    T0 = erlang:monotonic_time(microsecond),
    Pids = spawn_all(N, []),
    T1 = erlang:monotonic_time(microsecond),
    wait_count(N + 1),
    MemAfter = erlang:memory(total),
    Target = length(processes()) - N,
    T2 = erlang:monotonic_time(microsecond),
    [P ! stop || P <- Pids],
    wait_gone(Target),
    T3 = erlang:monotonic_time(microsecond),
    io:format("{\"bench\":\"spawn\",\"system\":\"beam\",\"processes\":~p,\"us_per_spawn\":~.3f,"
              "\"bytes_per_process\":~.1f,\"teardown_us_per_process\":~.3f}~n",
              [N, (T1 - T0) / N, (MemAfter - MemBefore) / N, (T3 - T2) / N]).

spawn_all(0, Acc) -> Acc;
spawn_all(N, Acc) -> spawn_all(N - 1, [spawn(fun idle/0) | Acc]).

idle() -> receive stop -> ok end.

wait_count(N) ->
    case length(processes()) >= N of true -> ok; false -> timer:sleep(5), wait_count(N) end.

wait_gone(Target) ->
    case length(processes()) =< Target of true -> ok; false -> timer:sleep(1), wait_gone(Target) end.
