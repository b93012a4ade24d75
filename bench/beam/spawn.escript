#!/usr/bin/env escript
%%! +P 2097152
-mode(compile).
%% Spawn N idle processes (each waiting in receive), then stop them.
%% The spawn loop alone is timed; memory is the growth of the emulator's
%% RSS per process once all are waiting; teardown runs from the first
%% `stop` until the process count is back. Modules are loaded beforehand,
%% and the round runs twice: times are the better round's (the second
%% reuses memory the first obtained), memory the first round's growth.
main([NStr]) ->
    N = list_to_integer(NStr),
    warm_up(),
    {Spawn1, Bytes, Teardown1} = one_round(N),
    {Spawn2, _, Teardown2} = one_round(N),
    io:format("{\"bench\":\"spawn\",\"system\":\"beam\",\"processes\":~p,\"us_per_spawn\":~.3f,"
              "\"bytes_per_process\":~.1f,\"teardown_us_per_process\":~.3f}~n",
              [N, min(Spawn1, Spawn2), Bytes, min(Teardown1, Teardown2)]).

one_round(N) ->
    erlang:garbage_collect(),
    Before = erlang:system_info(process_count),
    Rss0 = rss_bytes(),
    T0 = erlang:monotonic_time(nanosecond),
    Pids = spawn_all(N, []),
    T1 = erlang:monotonic_time(nanosecond),
    settle(),
    Rss1 = rss_bytes(),
    T2 = erlang:monotonic_time(nanosecond),
    stop_all(Pids),
    wait_count(Before),
    T3 = erlang:monotonic_time(nanosecond),
    {(T1 - T0) / 1000 / N, (Rss1 - Rss0) / N, (T3 - T2) / 1000 / N}.

spawn_all(0, Acc) -> Acc;
spawn_all(N, Acc) -> spawn_all(N - 1, [spawn(fun idle/0) | Acc]).

idle() -> receive stop -> ok end.

stop_all([]) -> ok;
stop_all([P | Ps]) -> P ! stop, stop_all(Ps).

%% Until every new process has run to its receive: the run queues are empty.
settle() ->
    case erlang:statistics(total_run_queue_lengths_all) of
        0 -> ok;
        _ -> receive after 1 -> settle() end
    end.

wait_count(Target) ->
    case erlang:system_info(process_count) =< Target of
        true -> ok;
        false -> receive after 1 -> wait_count(Target) end
    end.

rss_bytes() ->
    {ok, Statm} = prim_file:read_file("/proc/self/statm"),
    [_, Pages | _] = binary:split(Statm, <<" ">>, [global]),
    binary_to_integer(Pages) * 4096.

warm_up() ->
    [code:ensure_loaded(M) || M <- [binary, prim_file, io, io_lib, io_lib_format]],
    _ = rss_bytes(),
    ok.
