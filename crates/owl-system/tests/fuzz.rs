//! Property tests of the domain's input rules: visitors type anything.
//! `OWL_FUZZ_CASES` sets the cases per property (256 here; a million in the
//! long runs of docs/reliability.md).

use owl_system::board::{Draft, MAX_AUTHOR_CHARS, MAX_TEXT_CHARS};
use owl_system::load::{MAX_TARGET, parse_target};
use owl_system::math::parse_input;
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

    /// An input is accepted exactly when it is an integer as a person types
    /// it, and then read exactly.
    #[test]
    fn sum_inputs_are_integers_or_refused(text in "\\PC{0,50}") {
        let t = text.trim();
        let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
        let plain = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
        match parse_input(&text) {
            Ok(input) => {
                prop_assert!(plain, "{text:?} accepted");
                let expected = t.trim_start_matches('+').parse::<i64>().ok();
                prop_assert_eq!(input.to_i64(), expected);
            }
            Err(_) => prop_assert!(!plain, "{text:?} refused"),
        }
    }

    #[test]
    fn integers_in_range_are_accepted(n in any::<i64>(), pad in " {0,3}") {
        let input = parse_input(&format!("{pad}{n}{pad}")).unwrap();
        prop_assert_eq!(input.to_i64(), Some(n));
        prop_assert_eq!(input.as_str(), n.to_string());
    }

    /// Integers of any size up to the limit are taken digit for digit.
    #[test]
    fn integers_of_any_size_are_kept_exactly(
        negative in any::<bool>(),
        digits in "[1-9][0-9]{0,999}",
    ) {
        let text = if negative { format!("-{digits}") } else { digits.clone() };
        let input = parse_input(&text).unwrap();
        prop_assert_eq!(input.as_str(), text.as_str());
        prop_assert_eq!(input.to_i64(), text.parse::<i64>().ok());
    }

    #[test]
    fn load_targets_are_bounded(text in "\\PC{0,24}") {
        if let Ok(n) = parse_target(&text) {
            prop_assert!(n <= MAX_TARGET);
        }
    }

    /// Posts that pass the rules keep them; nothing panics on any text.
    #[test]
    fn drafts_keep_the_rules(text in "\\PC{0,2100}", author in "\\PC{0,100}") {
        if let Ok(d) = Draft::new(&text, &author) {
            prop_assert!(!d.text.trim().is_empty() && d.text.chars().count() <= MAX_TEXT_CHARS);
            prop_assert!(!d.author.trim().is_empty() && d.author.chars().count() <= MAX_AUTHOR_CHARS);
            prop_assert!(!d.author.contains('\n'));
        }
    }
}
