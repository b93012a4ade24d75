#!/usr/bin/env escript
-mode(compile).
%% The load-control workload: W workers, each waits a random 0-1 s, then once
%% a second computes sum(1..100) and bumps a shared counter.
main([WStr, SStr]) ->
    W = list_to_integer(WStr), S = list_to_integer(SStr),
    %% The sampler must not starve behind the workers it measures.
    process_flag(priority, high),
    Counter = counters:new(1, [write_concurrency]),
    [spawn(fun() -> worker(Counter) end) || _ <- lists:seq(1, W)],
    Half = S * 500,
    timer:sleep(Half),
    {J0, C0, T0} = sample(Counter),
    timer:sleep(S * 1000 - Half),
    {J1, C1, T1} = sample(Counter),
    Wall = (T1 - T0) / 1.0e6,
    io:format("{\"bench\":\"load\",\"system\":\"beam\",\"workers\":~p,\"seconds\":~p,\"jobs_per_s\":~.1f,"
              "\"cpu_cores\":~.3f,\"rss_mb\":~.1f}~n",
              [W, S, (J1 - J0) / Wall, (C1 - C0) / 1.0e6 / Wall, rss_mb()]).

worker(Counter) ->
    timer:sleep(rand:uniform(1000) - 1),
    tick(Counter, erlang:monotonic_time(millisecond)).

tick(Counter, Next) ->
    _ = lists:sum(lists:seq(1, 100)),
    counters:add(Counter, 1, 1),
    erlang:garbage_collect(),
    Next1 = Next + 1000,
    timer:sleep(max(0, Next1 - erlang:monotonic_time(millisecond))),
    tick(Counter, Next1).

sample(Counter) ->
    {counters:get(Counter, 1), cpu_us(), erlang:monotonic_time(microsecond)}.

%% User + system CPU time of the whole OS process, from /proc.
cpu_us() ->
    {ok, Stat} = file:read_file("/proc/self/stat"),
    Fields = string:lexemes(lists:last(string:split(binary_to_list(Stat), ")")), " "),
    Ticks = list_to_integer(lists:nth(12, Fields)) + list_to_integer(lists:nth(13, Fields)),
    Ticks * 10000.

rss_mb() ->
    {ok, Statm} = file:read_file("/proc/self/statm"),
    [_, Rss | _] = string:lexemes(binary_to_list(Statm), " "),
    list_to_integer(Rss) * 4096 / 1048576.
