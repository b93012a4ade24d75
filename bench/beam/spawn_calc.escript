#!/usr/bin/env escript
%%! +P 2097152
-mode(compile).
%% Spawn, compute sum(1..100), reply, exit — N times, in batches of 1000.
main([NStr]) ->
    N = list_to_integer(NStr),
    T0 = erlang:monotonic_time(microsecond),
    Sum = run(N, self(), 0),
    T1 = erlang:monotonic_time(microsecond),
    Sum = 5050 * N,
    io:format("{\"bench\":\"spawn-calc\",\"system\":\"beam\",\"processes\":~p,\"procs_per_s\":~.1f}~n",
              [N, N / ((T1 - T0) / 1.0e6)]).

run(0, _Parent, Acc) -> Acc;
run(Left, Parent, Acc) ->
    Batch = min(Left, 1000),
    [spawn(fun() -> Parent ! lists:sum(lists:seq(1, 100)) end) || _ <- lists:seq(1, Batch)],
    run(Left - Batch, Parent, Acc + collect(Batch, 0)).

collect(0, Acc) -> Acc;
collect(K, Acc) -> receive S when is_integer(S) -> collect(K - 1, Acc + S) end.
