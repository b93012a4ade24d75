#!/usr/bin/env escript
-mode(compile).
%% A token around a ring of P processes, M rounds. Prints msgs_per_s.
main([PStr, MStr]) ->
    P = list_to_integer(PStr), M = list_to_integer(MStr),
    Hops = P * M,
    Self = self(),
    Pids = [spawn(fun() -> member(Self, P) end) || _ <- lists:seq(1, P)],
    Next = tl(Pids) ++ [hd(Pids)],
    [Pid ! {next, N} || {Pid, N} <- lists:zip(Pids, Next)],
    T0 = erlang:monotonic_time(microsecond),
    hd(Pids) ! Hops,
    receive done -> ok end,
    T1 = erlang:monotonic_time(microsecond),
    io:format("{\"bench\":\"ring\",\"system\":\"beam\",\"processes\":~p,\"rounds\":~p,\"msgs_per_s\":~.1f}~n",
              [P, M, Hops / ((T1 - T0) / 1.0e6)]).

member(Parent, Size) -> receive {next, Next} -> loop(Parent, Next, Size) end.

loop(Parent, Next, Size) ->
    receive
        0 -> Parent ! done;
        N -> Next ! N - 1,
             case N < Size of true -> ok; false -> loop(Parent, Next, Size) end
    end.
