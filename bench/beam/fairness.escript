#!/usr/bin/env escript
-mode(compile).
%% K runaway processes plus W load workers, then 2,000 probes about 1 ms apart:
%% a fresh process computing sum(1..100) and replying (the round trip is
%% measured), then a ping to an existing process.
main([KStr, WStr]) ->
    K = list_to_integer(KStr), W = list_to_integer(WStr),
    [spawn(fun() -> runaway(1, -1) end) || _ <- lists:seq(1, K)],
    Counter = counters:new(1, [write_concurrency]),
    [spawn(fun() -> worker(Counter) end) || _ <- lists:seq(1, W)],
    timer:sleep(1200),
    Pong = spawn(fun pong/0),
    {Fresh, Native} = probe(2000, Pong, [], []),
    S = lists:sort(Fresh), N = lists:sort(Native),
    io:format("{\"bench\":\"fairness\",\"system\":\"beam\",\"runaway\":~p,\"workers\":~p,"
              "\"p50_us\":~p,\"p99_us\":~p,\"max_us\":~p,"
              "\"native_p50_us\":~p,\"native_p99_us\":~p,\"native_max_us\":~p}~n",
              [K, W, pct(S, 0.5), pct(S, 0.99), lists:last(S), pct(N, 0.5), pct(N, 0.99), lists:last(N)]).

%% The talk's bug 2: counting up from 1 never meets a negative n.
runaway(I, N) when I =:= N -> ok;
runaway(I, N) -> runaway(I + 1, N).

worker(Counter) ->
    timer:sleep(rand:uniform(1000) - 1),
    tick(Counter, erlang:monotonic_time(millisecond)).

tick(Counter, Next) ->
    _ = lists:sum(lists:seq(1, 100)),
    counters:add(Counter, 1, 1),
    Next1 = Next + 1000,
    timer:sleep(max(0, Next1 - erlang:monotonic_time(millisecond))),
    tick(Counter, Next1).

pong() -> receive {ping, From, Ref} -> From ! {pong, Ref}, pong() end.

probe(0, _Pong, Fresh, Native) -> {Fresh, Native};
probe(Left, Pong, Fresh, Native) ->
    timer:sleep(1),
    Self = self(), Ref = make_ref(),
    T0 = erlang:monotonic_time(microsecond),
    spawn(fun() -> Self ! {Ref, lists:sum(lists:seq(1, 100))} end),
    receive {Ref, 5050} -> ok end,
    T1 = erlang:monotonic_time(microsecond),
    Pong ! {ping, Self, Ref},
    receive {pong, Ref} -> ok end,
    T2 = erlang:monotonic_time(microsecond),
    probe(Left - 1, Pong, [T1 - T0 | Fresh], [T2 - T1 | Native]).

pct(Sorted, Q) -> lists:nth(max(1, min(length(Sorted), round(length(Sorted) * Q))), Sorted).
