//! Reply classification: the JSON corpus (`tests/corpus/classify.json`),
//! reply-grammar validation and property tests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly"
)]

use optline_policy::classify::{
    classify, normalize, Classification, Intent, ReplyContext, ReplyGrammar, Tier,
    CLASSIFIER_VERSION,
};
use proptest::prelude::*;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Corpus {
    version: String,
    cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
struct Case {
    name: String,
    body: String,
    #[serde(default)]
    opted_out: bool,
    grammar: Option<ReplyGrammar>,
    intent: Intent,
    tier: Tier,
    rule: Option<String>,
    matched: Option<String>,
}

fn corpus() -> Corpus {
    serde_json::from_str(include_str!("corpus/classify.json")).expect("classify corpus parses")
}

fn grammar() -> ReplyGrammar {
    ReplyGrammar {
        confirm: vec!["C".to_owned(), "1".to_owned()],
        reschedule: vec!["R".to_owned(), "2".to_owned()],
    }
}

#[test]
fn the_corpus_matches_the_classifier_version() {
    assert_eq!(corpus().version, CLASSIFIER_VERSION);
}

#[test]
fn every_corpus_reply_is_classified_as_recorded() {
    let corpus = corpus();
    assert!(corpus.cases.len() >= 80, "at least 80 cases");
    let mut failures = Vec::new();
    for case in &corpus.cases {
        let ctx = ReplyContext {
            grammar: case.grammar.clone(),
            opted_out: case.opted_out,
        };
        let got = classify(&case.body, &ctx);
        let rule_ok = case.rule.as_ref().is_none_or(|rule| *rule == got.rule);
        let matched_ok = case
            .matched
            .as_ref()
            .is_none_or(|m| got.matched.as_ref() == Some(m));
        if got.intent != case.intent || got.tier != case.tier || !rule_ok || !matched_ok {
            failures.push(format!(
                "{}: body {:?} expected {:?}/{:?} rule {:?} matched {:?}, got {:?}",
                case.name, case.body, case.intent, case.tier, case.rule, case.matched, got
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_grammar_in_the_corpus_is_valid() {
    for case in corpus().cases {
        if let Some(grammar) = case.grammar {
            assert_eq!(grammar.validate(), Ok(()), "{}", case.name);
        }
    }
}

#[test]
fn a_grammar_of_plain_codes_is_valid() {
    assert_eq!(grammar().validate(), Ok(()));
}

#[test]
fn a_grammar_rejects_reserved_words_as_codes() {
    for reserved in [
        "STOP",
        "cancel",
        "End",
        "QUIT",
        "revoke",
        "unsubscribe",
        "Opt-Out",
        "optout",
        "stopall",
        "arrêt",
        "remove",
        "td",
        "alto",
        "parar",
        "basta",
        "cancelar",
        "help",
        "INFO",
        "ayuda",
        "start",
        "unstop",
        "subscribe",
        "YES",
        "sí",
    ] {
        let grammar = ReplyGrammar {
            confirm: vec![reserved.to_owned()],
            reschedule: vec!["R".to_owned()],
        };
        assert!(grammar.validate().is_err(), "{reserved} must be rejected");
    }
}

#[test]
fn a_grammar_rejects_empty_and_duplicate_codes() {
    let empty = ReplyGrammar {
        confirm: vec!["  ".to_owned()],
        reschedule: vec![],
    };
    assert!(empty.validate().is_err());
    let duplicate = ReplyGrammar {
        confirm: vec!["C".to_owned()],
        reschedule: vec!["c".to_owned()],
    };
    assert!(duplicate.validate().is_err());
    let two_words = ReplyGrammar {
        confirm: vec!["C 1".to_owned()],
        reschedule: vec![],
    };
    assert!(two_words.validate().is_err());
}

#[test]
fn normalize_folds_width_case_quotes_accents_and_spacing() {
    assert_eq!(
        normalize("  ＳＴＯＰ\u{2019}s \t\n Arrêt  "),
        "stop's arret"
    );
    assert_eq!(normalize("Don\u{2019}t"), "don't");
    assert_eq!(normalize("st\u{200B}op"), "stop");
    assert_eq!(normalize(""), "");
}

#[test]
fn classification_serializes_in_snake_case() {
    let got = classify("STOP", &ReplyContext::default());
    let json = serde_json::to_value(&got).unwrap();
    assert_eq!(json["intent"], "opt_out");
    assert_eq!(json["tier"], "exact");
    assert_eq!(json["rule"], "keyword.fcc.stop");
    let back: Classification = serde_json::from_value(json).unwrap();
    assert_eq!(back, got);
}

// ---------------------------------------------------------------------------
// Properties

/// Every opt-out keyword as a reply may spell it.
const KEYWORDS: [&str; 18] = [
    "stop",
    "quit",
    "end",
    "revoke",
    "opt out",
    "opt-out",
    "cancel",
    "unsubscribe",
    "stopall",
    "optout",
    "arret",
    "arrêt",
    "remove",
    "td",
    "alto",
    "parar",
    "basta",
    "cancelar",
];

/// Punctuation, spacing and emoji that may surround a keyword.
fn surrounding() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec![
            ' ',
            '\t',
            '\n',
            '!',
            '?',
            '.',
            ',',
            ';',
            ':',
            '"',
            '\'',
            '(',
            ')',
            '*',
            '#',
            '@',
            '-',
            '~',
            '\u{2026}',
            '\u{201C}',
            '\u{201D}',
            '\u{2019}',
            '\u{3000}',
            '\u{00A0}',
            '\u{1F6D1}',
            '\u{1F64F}',
            '\u{1F44D}',
            '\u{200B}',
        ]),
        0..6,
    )
    .prop_map(|cs| cs.into_iter().collect())
}

/// Upper-cases the letters `mask` selects and optionally widens ASCII
/// letters to their full-width forms.
fn disguise(keyword: &str, mask: &[bool], wide: bool) -> String {
    keyword
        .chars()
        .enumerate()
        .map(|(i, c)| {
            let c = if mask.get(i).copied().unwrap_or(false) {
                c.to_uppercase().next().unwrap_or(c)
            } else {
                c
            };
            if wide && c.is_ascii_alphabetic() {
                char::from_u32(u32::from(c) + 0xFEE0).unwrap_or(c)
            } else {
                c
            }
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn classify_never_panics_on_any_input(body in any::<String>(), opted_out in any::<bool>()) {
        let ctx = ReplyContext { grammar: Some(grammar()), opted_out };
        let got = classify(&body, &ctx);
        prop_assert!(!got.rule.is_empty());
    }

    #[test]
    fn classify_never_panics_on_keyword_soup(
        words in prop::collection::vec(
            prop::sample::select(vec![
                "stop", "don't", "not", "by", "opt", "out", "no", "mas", "yes", "c", "r",
                "text", "me", "please", "end", "of", "help", "start", "ya", "wrong",
                "take", "off", "never", "mind", "at", "once", "!", "?", ",", "\u{1F600}",
            ]),
            0..40,
        ),
        opted_out in any::<bool>(),
    ) {
        let ctx = ReplyContext { grammar: Some(grammar()), opted_out };
        let got = classify(&words.join(" "), &ctx);
        prop_assert!(!got.rule.is_empty());
    }

    #[test]
    fn a_keyword_with_any_punctuation_case_and_width_is_an_exact_opt_out(
        keyword in prop::sample::select(KEYWORDS.to_vec()),
        mask in prop::collection::vec(any::<bool>(), 12),
        wide in any::<bool>(),
        before in surrounding(),
        after in surrounding(),
        opted_out in any::<bool>(),
    ) {
        let body = format!("{before}{}{after}", disguise(keyword, &mask, wide));
        let ctx = ReplyContext { grammar: Some(grammar()), opted_out };
        let got = classify(&body, &ctx);
        prop_assert_eq!(got.intent, Intent::OptOut, "{:?}", body);
        prop_assert_eq!(got.tier, Tier::Exact, "{:?}", body);
    }

    #[test]
    fn a_word_merely_containing_a_keyword_is_not_an_exact_opt_out(
        keyword in prop::sample::select(vec!["stop", "end", "quit", "cancel", "remove"]),
        prefix in "[a-z]{0,3}",
        suffix in "[a-z]{1,4}",
    ) {
        let body = format!("{prefix}{keyword}{suffix}");
        let got = classify(&body, &ReplyContext::default());
        prop_assert!(got.tier != Tier::Exact || got.intent != Intent::OptOut || body == "stopall", "{:?}", body);
    }
}
