#!/usr/bin/env escript
%%! +P 2097152
-mode(compile).
%% A token around a ring of P processes, M rounds. Prints msgs_per_s.
%% The ring is built back to front, so every member knows its successor from
%% its first instruction; the clock starts once every member waits in
%% `receive` (empty run queues), so it measures message passing only.
main([PStr, MStr]) ->
    P = list_to_integer(PStr), M = list_to_integer(MStr),
    Hops = P * M,
    Self = self(),
    Last = spawn(fun() -> receive {first, First} -> member(First, Self) end end),
    First = chain(P - 1, Last, Self),
    Last ! {first, First},
    settle(),
    T0 = erlang:monotonic_time(nanosecond),
    First ! Hops - 1,
    receive done -> ok end,
    T1 = erlang:monotonic_time(nanosecond),
    io:format("{\"bench\":\"ring\",\"system\":\"beam\",\"processes\":~p,\"rounds\":~p,\"msgs_per_s\":~.1f}~n",
              [P, M, Hops / ((T1 - T0) / 1.0e9)]),
    halt(0).

chain(0, Next, _Parent) -> Next;
chain(K, Next, Parent) -> chain(K - 1, spawn(fun() -> member(Next, Parent) end), Parent).

member(Next, Parent) ->
    receive
        0 -> Parent ! done;
        N -> Next ! N - 1, member(Next, Parent)
    end.

settle() ->
    case erlang:statistics(total_run_queue_lengths_all) of
        0 -> ok;
        _ -> erlang:yield(), settle()
    end.
