//! Property tests of the runtime's parsers: whatever text comes in (a
//! console, a URL, a log line), parsing never panics and what prints
//! parses back. `OWL_FUZZ_CASES` sets the cases per property (256 here; the
//! long runs in docs/reliability.md use a million).

use owl_runtime::{ExitReason, PidId};
use proptest::prelude::*;

fn cases() -> ProptestConfig {
    let cases = std::env::var("OWL_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(256);
    ProptestConfig::with_cases(cases)
}

proptest! {
    #![proptest_config(cases())]

    #[test]
    fn any_text_parses_as_a_pid_or_is_refused(text in ".{0,40}") {
        let _ = text.parse::<PidId>();
    }

    #[test]
    fn pids_print_and_parse_back(n in any::<u64>()) {
        prop_assert_eq!(PidId(n).to_string().parse::<PidId>(), Ok(PidId(n)));
        prop_assert_eq!(n.to_string().parse::<PidId>(), Ok(PidId(n)));
    }

    #[test]
    fn exit_reasons_print_and_parse_back(text in "[ -~]{1,60}") {
        let reason: ExitReason = text.parse().unwrap();
        // Whatever it became, it prints as something that parses to itself.
        prop_assert_eq!(reason.to_string().parse::<ExitReason>().unwrap(), reason);
    }
}
