;; The talk's calculation, version 1 — with its three bugs on purpose.
;;
;; sum(n) returns (status, lo, hi): status 0 means ∑(1..n) is the unsigned
;; 128-bit number hi·2^64 + lo, exact for every n that finishes.
;;
;; Bug 1 (edge case): 13 crashes.
;; Bug 2 (missing input validation): the loop counts up from 1 until it meets
;;        n, so for n < 1 it never ends.
;; Bug 3 (performance): a naive O(n) loop, so huge inputs take ages.
(module
  ;; Calls are independent (no memory, table or mutable global): one
  ;; instance may serve call after call.
  (func (export "owl_reusable"))

  (func $sum (export "sum") (param $n i64) (result i32 i64 i64)
    (if (i64.eq (local.get $n) (i64.const 13))
      (then unreachable))
    (i32.const 0)
    (call $naive_sum (local.get $n)))

  (func $naive_sum (param $n i64) (result i64 i64)
    (local $i i64) (local $lo i64) (local $hi i64) (local $next i64)
    (local.set $i (i64.const 1))
    (block $done
      (loop $again
        ;; lo:hi += i, carrying into hi
        (local.set $next (i64.add (local.get $lo) (local.get $i)))
        (if (i64.lt_u (local.get $next) (local.get $lo))
          (then (local.set $hi (i64.add (local.get $hi) (i64.const 1)))))
        (local.set $lo (local.get $next))
        (br_if $done (i64.eq (local.get $i) (local.get $n)))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br $again)))
    (local.get $lo)
    (local.get $hi)))
