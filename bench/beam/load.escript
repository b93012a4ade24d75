#!/usr/bin/env escript
%%! +P 2097152
-mode(compile).
%% The talk's load control on the BEAM, given its best chance:
%% W workers; the spawner draws each one's start offset (0-999 ms), then each
%% loops: sum(1..100), a GC (as the demo's worker does), one ets counter
%% bump, `receive after 1000`. The main process samples at high priority on
%% absolute 100 ms timers, so it stays on time when the schedulers are
%% saturated; /proc is read with prim_file (no trip through the file server)
%% and every module is loaded before the clock starts. Figures are taken
%% over the second half of the run.
main([WStr, SStr]) ->
    W = list_to_integer(WStr), Secs = list_to_integer(SStr),
    warm_up(),
    process_flag(priority, high),
    jobs = ets:new(jobs, [named_table, public, set, {write_concurrency, true}]),
    true = ets:insert(jobs, {done, 0}),
    spawn_workers(W),
    Start = erlang:monotonic_time(millisecond),
    Ticks = Secs * 10,
    Half = tick_until(Start, 1, Ticks div 2),
    End = tick_until(Start, Ticks div 2 + 1, Ticks),
    {T0, J0, C0} = Half, {T1, J1, C1} = End,
    Wall = (T1 - T0) / 1.0e3,
    io:format("{\"bench\":\"load\",\"system\":\"beam\",\"workers\":~p,\"seconds\":~p,"
              "\"jobs_per_s\":~.1f,\"cpu_cores\":~.3f,\"rss_mb\":~.1f}~n",
              [W, Secs, (J1 - J0) / Wall, (C1 - C0) / Wall, rss_bytes() / 1048576]),
    erlang:halt(0).

spawn_workers(0) -> ok;
spawn_workers(K) ->
    Offset = rand:uniform(1000) - 1,
    spawn(fun() -> receive after Offset -> work() end end),
    spawn_workers(K - 1).

work() ->
    _ = lists:sum(lists:seq(1, 100)),
    erlang:garbage_collect(),
    ets:update_counter(jobs, done, 1),
    receive after 1000 -> ok end,
    work().

%% Sleeps to each absolute 100 ms tick from I to Last; the reading at Last.
tick_until(Start, I, Last) ->
    erlang:start_timer(Start + I * 100, self(), tick, [{abs, true}]),
    receive {timeout, _, tick} -> ok end,
    case I >= Last of
        true ->
            [{done, J}] = ets:lookup(jobs, done),
            {erlang:monotonic_time(millisecond), J, cpu_seconds()};
        false -> tick_until(Start, I + 1, Last)
    end.


%% User + system CPU seconds of the whole emulator (fields 14 and 15 of
%% /proc/self/stat, counted after the command name's closing parenthesis).
cpu_seconds() ->
    {ok, Stat} = prim_file:read_file("/proc/self/stat"),
    [_, After] = binary:split(Stat, <<") ">>),
    Fields = binary:split(After, <<" ">>, [global]),
    (binary_to_integer(lists:nth(12, Fields)) + binary_to_integer(lists:nth(13, Fields))) / 100.

rss_bytes() ->
    {ok, Statm} = prim_file:read_file("/proc/self/statm"),
    [_, Pages | _] = binary:split(Statm, <<" ">>, [global]),
    binary_to_integer(Pages) * 4096.

%% Loads every module the run touches now, not inside the measurement.
warm_up() ->
    [code:ensure_loaded(M) || M <- [rand, lists, ets, binary, prim_file, io, io_lib, io_lib_format, erlang]],
    _ = rand:uniform(2), _ = cpu_seconds(), _ = rss_bytes(),
    ok.
