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
    CLASSIFIER_VERSION, KEYWORDS, LANGUAGES,
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
const SPELLINGS: [&str; 18] = [
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
        keyword in prop::sample::select(SPELLINGS.to_vec()),
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
        let is_keyword = KEYWORDS.iter().any(|k| k.word == body);
        prop_assert!(got.tier != Tier::Exact || got.intent != Intent::OptOut || is_keyword, "{:?}", body);
    }
}

// ---------------------------------------------------------------------------
// Every opt-out keyword in every language, cased, spaced and in look-alike
// letters.

/// Look-alikes a person (or a filter-dodging phone) may type: Cyrillic and
/// Greek letters that look like Latin ones, and the Latin ones that look
/// like Cyrillic, both cases.
const LOOKALIKES: &[(char, &[char])] = &[
    ('a', &['а', 'α']),
    ('c', &['с']),
    ('e', &['е']),
    ('o', &['о', 'ο', '0']),
    ('p', &['р', 'ρ']),
    ('s', &['ѕ']),
    ('i', &['і', 'ı']),
    ('x', &['х']),
    ('y', &['у']),
    ('j', &['ј']),
    ('h', &['һ']),
    ('d', &['ԁ']),
    ('S', &['Ѕ']),
    ('T', &['Т', 'Τ']),
    ('O', &['О', 'Ο', '0']),
    ('P', &['Р', 'Ρ']),
    ('E', &['Е', 'Ε']),
    ('A', &['А', 'Α']),
    ('C', &['С']),
    ('N', &['Ν']),
    ('K', &['К', 'Κ']),
    ('M', &['М', 'Μ']),
    ('H', &['Н', 'Η']),
    ('B', &['В', 'Β']),
    ('X', &['Х', 'Χ']),
    ('о', &['o']),
    ('с', &['c']),
    ('а', &['a']),
    ('е', &['e']),
    ('р', &['p']),
    ('х', &['x']),
    ('О', &['O']),
    ('С', &['C']),
    ('Т', &['T']),
];

fn opt_out_keywords() -> Vec<&'static str> {
    KEYWORDS
        .iter()
        .filter(|k| k.intent == Intent::OptOut)
        .map(|k| k.word)
        .collect()
}

/// A variant of `word`: each letter in upper or lower case by `cases`, some
/// replaced by look-alikes by `swaps`, the letters joined by `sep` when
/// `spaced`.
fn variant(word: &str, cases: &[bool], swaps: &[usize], spaced: bool, sep: &str) -> String {
    let letters: Vec<String> = word
        .chars()
        .enumerate()
        .map(|(i, c)| {
            let cased: String = if cases.get(i).copied().unwrap_or(false) {
                c.to_uppercase().collect()
            } else {
                c.to_string()
            };
            let mut chars = cased.chars();
            let (Some(first), None) = (chars.next(), chars.next()) else {
                return cased;
            };
            let pick = swaps.get(i).copied().unwrap_or(0);
            match LOOKALIKES.iter().find(|(plain, _)| *plain == first) {
                Some((_, alikes)) if pick > 0 => alikes[(pick - 1) % alikes.len()].to_string(),
                _ => cased,
            }
        })
        .filter(|l| l != " ")
        .collect();
    if spaced {
        letters.join(sep)
    } else if word.contains(' ') {
        // Keep the words of a multi-word keyword apart.
        let mut out = String::new();
        let mut letters = letters.iter();
        for (n, w) in word.split(' ').enumerate() {
            if n > 0 {
                out.push(' ');
            }
            for _ in w.chars() {
                out.push_str(letters.next().map_or("", String::as_str));
            }
        }
        out
    } else {
        letters.concat()
    }
}

#[test]
fn the_keyword_table_covers_every_listed_language_in_normalized_form() {
    for lang in LANGUAGES {
        for intent in [Intent::OptOut, Intent::Help, Intent::OptIn] {
            assert!(
                KEYWORDS
                    .iter()
                    .any(|k| k.intent == intent && k.languages.contains(lang)),
                "{lang} has no {intent:?} keyword"
            );
        }
    }
    for k in KEYWORDS {
        assert_eq!(normalize(k.word), k.word, "{} is stored normalized", k.word);
        assert!(k.rule.starts_with("keyword."), "{}", k.rule);
        assert!(!k.source.is_empty(), "{} has a source", k.word);
        let ctx = ReplyContext {
            grammar: None,
            opted_out: true,
        };
        let got = classify(k.word, &ctx);
        assert_eq!(
            (got.intent, got.tier, got.rule.as_str()),
            (k.intent, Tier::Exact, k.rule),
            "{} alone",
            k.word
        );
    }
}

#[test]
fn look_alike_and_spaced_keywords_are_opt_outs() {
    let ctx = ReplyContext::default();
    for body in [
        "SТОP",     // Cyrillic Т and О
        "ЅTOP",     // Cyrillic Ѕ
        "ST0P",     // a zero
        "S T O P",  // spaced
        "S.T.O.P.", // dotted
        "s-t-o-p",
        "ST OP",
        "U N S U B S C R I B E",
        "стoп", // Russian, with a Latin o
        "退 订",
    ] {
        let got = classify(body, &ctx);
        assert_eq!(got.intent, Intent::OptOut, "{body:?}: {got:?}");
        assert_ne!(got.tier, Tier::Doubtful, "{body:?}: {got:?}");
    }
    for body in ["STPO", "unsubscibe", "cancle", "stopp please", "SOTP"] {
        let got = classify(body, &ctx);
        assert_eq!(got.intent, Intent::OptOut, "{body:?}: {got:?}");
    }
    // Real words next to a keyword are not near-misses.
    for body in ["shop", "quite", "Step", "cancer?", "auto"] {
        assert_eq!(classify(body, &ctx).intent, Intent::Other, "{body:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn every_opt_out_keyword_cased_spaced_or_in_look_alikes_is_an_opt_out(
        keyword in prop::sample::select(opt_out_keywords()),
        cases in prop::collection::vec(any::<bool>(), 16),
        swaps in prop::collection::vec(0usize..4, 16),
        spaced in any::<bool>(),
        sep in prop::sample::select(vec![" ", ".", ". ", "-", " - ", "_", "*"]),
        trailer in prop::sample::select(vec!["", "!", ".", "!!", " please", " 🙏"]),
        opted_out in any::<bool>(),
        with_grammar in any::<bool>(),
    ) {
        let body = format!("{}{trailer}", variant(keyword, &cases, &swaps, spaced, sep));
        let ctx = ReplyContext {
            grammar: with_grammar.then(grammar),
            opted_out,
        };
        let got = classify(&body, &ctx);
        prop_assert_eq!(got.intent, Intent::OptOut, "{:?} from {:?}: {:?}", body, keyword, got);
    }
}
