#!/usr/bin/env escript
%%! +P 2097152
-mode(compile).
%% K runaway processes next to W load workers (the load workload, as in
%% load.escript), then 2,000 requests on an absolute 1 ms timer (open loop:
%% a late tick does not push the later ones back). Each request spawns a
%% fresh process that computes the naive sum(1..100) and replies, then pings
%% an existing process; each round trip is timed from just before the spawn
%% or send to the reply's arrival. Modules are loaded before anything starts.
main([KStr, WStr]) ->
    K = list_to_integer(KStr), W = list_to_integer(WStr),
    warm_up(),
    jobs = ets:new(jobs, [named_table, public, set, {write_concurrency, true}]),
    true = ets:insert(jobs, {done, 0}),
    spawn_workers(W),
    [spawn(fun() -> runaway(0, 0) end) || _ <- lists:seq(1, K)],
    receive after 2000 -> ok end,
    Pong = spawn(fun pong/0),
    Start = erlang:monotonic_time(millisecond),
    erlang:start_timer(Start + 1, self(), tick, [{abs, true}]),
    {Fresh, Native} = requests(Start, 1, 2000, Pong, [], []),
    S = lists:sort(Fresh), N = lists:sort(Native),
    io:format("{\"bench\":\"fairness\",\"system\":\"beam\",\"runaway\":~p,\"workers\":~p,"
              "\"p50_us\":~.1f,\"p99_us\":~.1f,\"max_us\":~.1f,"
              "\"native_p50_us\":~.1f,\"native_p99_us\":~.1f,\"native_max_us\":~.1f}~n",
              [K, W, pct(S, 0.5), pct(S, 0.99), lists:last(S), pct(N, 0.5), pct(N, 0.99), lists:last(N)]),
    erlang:halt(0).

%% Sends request I at each tick until all are sent. The fresh process is
%% timed alone and the ping after its reply, as owl's probe does: with both
%% in flight at once, each would also wait for the other (a weaker BEAM than
%% ../shared/bench-beam/fairness.escript measures).
requests(_Start, I, Total, _Pong, Fresh, Native) when I > Total ->
    {Fresh, Native};
requests(Start, I, Total, Pong, Fresh, Native) ->
    receive
        {timeout, _, tick} ->
            Self = self(),
            case I < Total of
                true -> erlang:start_timer(Start + I + 1, Self, tick, [{abs, true}]);
                false -> ok
            end,
            T0 = erlang:monotonic_time(nanosecond),
            spawn(fun() -> Self ! {sum, T0, naive_sum(1, 100, 0)} end),
            Took = receive {sum, T0, 5050} -> (erlang:monotonic_time(nanosecond) - T0) / 1000 end,
            T1 = erlang:monotonic_time(nanosecond),
            Pong ! {ping, Self, T1},
            Ping = receive {pong, T1} -> (erlang:monotonic_time(nanosecond) - T1) / 1000 end,
            requests(Start, I + 1, Total, Pong, [Took | Fresh], [Ping | Native])
    end.

naive_sum(N, N, Acc) -> Acc + N;
naive_sum(I, N, Acc) -> naive_sum(I + 1, N, Acc + I).

%% The talk's bug 2, kept in small integers: it never ends, never allocates.
runaway(I, Acc) -> runaway((I + 1) band 16#FFFFFFF, (Acc + I) band 16#FFFFFFFFFFF).

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

pong() -> receive {ping, From, T0} -> From ! {pong, T0}, pong() end.

pct(Sorted, Q) -> lists:nth(max(1, min(length(Sorted), round(length(Sorted) * Q))), Sorted).

warm_up() ->
    [code:ensure_loaded(M) || M <- [rand, lists, ets, io, io_lib, io_lib_format]],
    _ = rand:uniform(2),
    ok.
