#!/usr/bin/env escript
%%! -sname owl_bench_dist_a +P 2097152
%% `owl bench dist --compare-beam`: owl's distribution workload on
%% Distributed Erlang. Node b is a peer on this machine (peer:start_link,
%% OTP 25+); both nodes run one helper module compiled once and loaded on
%% each; times come from the monotonic clock. The 10 MB message is one
%% binary sent twenty times (a reference-counted binary, the BEAM's best).
%% Args: PINGS SENDERS EACH MONITORS. Prints one JSON object with owl's keys.
%% SIGSTOP is not measured here: with the default net_ticktime it takes
%% about 75 s (../shared/bench-beam/results-dist.txt).
-mode(compile).

helper_text() ->
    "-module(owl_bench_dist_helper).\n"
    "-export([echo/0, sink/2, hold/0]).\n"
    "echo() -> receive {ping, From, N} -> From ! {pong, N}, echo() end.\n"
    "sink(0, Report) -> Report ! sink_done;\n"
    "sink(K, Report) -> receive _ -> sink(K - 1, Report) end.\n"
    "hold() -> receive stop -> ok end.\n".

%% Compiles the helper here and loads it on this node and on `Node`.
load_helper(Node) ->
    Dir = filename:join("/tmp", "owl-bench-dist-" ++ os:getpid()),
    Path = filename:join(Dir, "owl_bench_dist_helper.erl"),
    ok = filelib:ensure_dir(Path),
    ok = file:write_file(Path, helper_text()),
    {ok, Mod, Beam} = compile:file(Path, [binary, report_errors]),
    _ = file:delete(Path),
    _ = file:del_dir(Dir),
    {module, Mod} = code:load_binary(Mod, Path, Beam),
    {module, Mod} = rpc:call(Node, code, load_binary, [Mod, Path, Beam]),
    Mod.

now_us() -> erlang:monotonic_time(microsecond).

%% N round trips to Echo; the sorted times in microseconds.
round_trips(Echo, N) -> round_trips(Echo, N, []).
round_trips(_Echo, 0, Times) -> lists:sort(Times);
round_trips(Echo, N, Times) ->
    Start = now_us(),
    Echo ! {ping, self(), N},
    receive {pong, N} -> ok end,
    round_trips(Echo, N - 1, [now_us() - Start | Times]).

percentile(Sorted, P) ->
    Len = length(Sorted),
    lists:nth(max(1, min(Len, round(P * Len))), Sorted).

send_many(_To, _Msg, 0) -> ok;
send_many(To, Msg, K) -> To ! Msg, send_many(To, Msg, K - 1).

collect(_Tag, 0) -> ok;
collect(Tag, K) -> receive Tag -> collect(Tag, K - 1) end.

downs(0, NoConnection) -> NoConnection;
downs(Left, NoConnection) ->
    receive
        {'DOWN', _, process, _, noconnection} -> downs(Left - 1, NoConnection + 1);
        {'DOWN', _, process, _, _} -> downs(Left - 1, NoConnection)
    end.

main(Args) ->
    [Pings, Senders, Each, Monitors] = [list_to_integer(A) || A <- Args],
    %% The peer is linked to us; its kill -9 must not end this script.
    process_flag(trap_exit, true),
    {ok, _Peer, Node} = peer:start_link(#{name => peer:random_name(owl_bench_dist_b),
                                          args => ["+P", "2097152"]}),
    Mod = load_helper(Node),
    Self = self(),

    %% Remote monitors first, as owl measures them (kept for the kill -9).
    Holders = [spawn(Node, Mod, hold, []) || _ <- lists:seq(1, Monitors)],
    {memory, Before} = process_info(self(), memory),
    _ = [monitor(process, H) || H <- Holders],
    {memory, After} = process_info(self(), memory),
    MonitorBytes = (After - Before) / Monitors,

    Echo = spawn(Node, Mod, echo, []),
    _ = round_trips(Echo, 10000),
    T0 = now_us(),
    Idle = round_trips(Echo, Pings),
    Rate = Pings * 1.0e6 / (now_us() - T0),

    Sinks = [spawn(Node, Mod, sink, [Each, Self]) || _ <- lists:seq(1, Senders)],
    T1 = now_us(),
    _ = [spawn(fun() -> send_many(S, item, Each) end) || S <- Sinks],
    spawn(fun() -> Self ! {under_stream, round_trips(Echo, 2000)} end),
    collect(sink_done, Senders),
    StreamRate = Senders * Each * 1.0e6 / (now_us() - T1),
    UnderStream = receive {under_stream, U} -> U end,

    Blob = binary:copy(<<"x">>, 10 * 1024 * 1024),
    BlobSink = spawn(Node, Mod, sink, [20, Self]),
    spawn(fun() -> send_many(BlobSink, Blob, 20) end),
    Under10MB = round_trips(Echo, 500),
    collect(sink_done, 1),

    OsPid = rpc:call(Node, os, getpid, []),
    T2 = now_us(),
    os:cmd("kill -9 " ++ OsPid),
    Down = downs(Monitors, 0),
    Kill9Ms = (now_us() - T2) / 1000,

    Fields = [{pingpong_rtt_per_s, Rate},
              {pingpong_p50_us, percentile(Idle, 0.5)},
              {pingpong_p99_us, percentile(Idle, 0.99)},
              {stream_msgs_per_s, StreamRate},
              {rtt_under_stream_p50_us, percentile(UnderStream, 0.5)},
              {rtt_under_stream_p99_us, percentile(UnderStream, 0.99)},
              {rtt_under_10mb_p99_us, percentile(Under10MB, 0.99)},
              {kill9_noconnection_ms, Kill9Ms},
              {kill9_down, Down},
              {monitor_bytes, MonitorBytes}],
    Json = [io_lib:format("\"~s\":~p", [K, V]) || {K, V} <- Fields],
    io:format("{\"bench\":\"dist\",~s}~n", [lists:join(",", Json)]).
