//! Segment counting, splitting and worst-case sizing: the JSON corpus
//! (`tests/corpus/segments.json`, boundary numbers checked by hand against
//! 3GPP TS 23.038 / 23.040) and property tests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly"
)]

use optline_policy::segments::{
    count, encoding_of, gsm7_septets, split, worst_case, Encoding, VariableBound, VariableCharset,
    SEGMENTS_VERSION,
};
use proptest::prelude::*;
use serde::Deserialize;
use unicode_segmentation::UnicodeSegmentation;

#[derive(Debug, Deserialize)]
struct Corpus {
    version: String,
    cases: Vec<CountCase>,
    worst_case: Vec<WorstCase>,
}

#[derive(Debug, Deserialize)]
struct CountCase {
    name: String,
    /// The body as pieces repeated: `[["a", 160]]` is 160 letters.
    body: Vec<(String, usize)>,
    encoding: Encoding,
    units: usize,
    characters: usize,
    segments: usize,
    per_segment: usize,
    /// Units of each part in the message's encoding, when checked.
    part_units: Option<Vec<usize>>,
}

#[derive(Debug, Deserialize)]
struct WorstCase {
    name: String,
    literal: Vec<(String, usize)>,
    variables: Vec<VariableBound>,
    encoding: Encoding,
    units: usize,
    characters: usize,
    segments: usize,
}

fn corpus() -> Corpus {
    serde_json::from_str(include_str!("corpus/segments.json")).expect("segments corpus parses")
}

fn build(pieces: &[(String, usize)]) -> String {
    pieces.iter().map(|(piece, n)| piece.repeat(*n)).collect()
}

/// Units of `s` in the encoding of the whole message it belongs to.
fn units_in(s: &str, encoding: Encoding) -> usize {
    match encoding {
        Encoding::Gsm7 => s.chars().map(|c| gsm7_septets(c).unwrap_or(2)).sum(),
        Encoding::Ucs2 => s.encode_utf16().count(),
    }
}

#[test]
fn the_corpus_matches_the_rules_version() {
    assert_eq!(corpus().version, SEGMENTS_VERSION);
}

#[test]
fn every_corpus_body_counts_and_splits_as_recorded() {
    let corpus = corpus();
    assert!(corpus.cases.len() >= 40, "at least 40 count cases");
    for case in &corpus.cases {
        let body = build(&case.body);
        let got = count(&body);
        let name = &case.name;
        assert_eq!(got.encoding, case.encoding, "{name}: encoding");
        assert_eq!(encoding_of(&body), case.encoding, "{name}: encoding_of");
        assert_eq!(got.units, case.units, "{name}: units");
        assert_eq!(got.characters, case.characters, "{name}: characters");
        assert_eq!(got.segments, case.segments, "{name}: segments");
        assert_eq!(got.per_segment, case.per_segment, "{name}: per_segment");
        let parts = split(&body);
        assert_eq!(
            parts.len(),
            case.segments,
            "{name}: split agrees with count"
        );
        assert_eq!(
            parts.concat(),
            body,
            "{name}: parts concatenate to the body"
        );
        if let Some(expected) = &case.part_units {
            let units: Vec<usize> = parts.iter().map(|p| units_in(p, got.encoding)).collect();
            assert_eq!(&units, expected, "{name}: units of each part");
        }
    }
}

#[test]
fn every_corpus_template_has_the_recorded_worst_case() {
    let corpus = corpus();
    for case in &corpus.worst_case {
        let pieces: Vec<String> = case
            .literal
            .iter()
            .map(|(piece, n)| piece.repeat(*n))
            .collect();
        let literal: Vec<&str> = pieces.iter().map(String::as_str).collect();
        let got = worst_case(&literal, &case.variables);
        let name = &case.name;
        assert_eq!(got.encoding, case.encoding, "{name}: encoding");
        assert_eq!(got.units, case.units, "{name}: units");
        assert_eq!(got.characters, case.characters, "{name}: characters");
        assert_eq!(got.segments, case.segments, "{name}: segments");
    }
}

#[test]
fn the_default_alphabet_has_127_characters_and_the_extension_table_10() {
    let all = (0u32..=0x10FFFF).filter_map(char::from_u32);
    let (mut basic, mut extension) = (0, 0);
    for c in all {
        match gsm7_septets(c) {
            Some(1) => basic += 1,
            Some(2) => extension += 1,
            Some(other) => panic!("{c:?} costs {other} septets"),
            None => {}
        }
    }
    assert_eq!(
        basic, 127,
        "TS 23.038 default alphabet less the escape code"
    );
    assert_eq!(extension, 10, "TS 23.038 extension table");
}

// ---------------------------------------------------------------------------
// Properties

/// Characters that stress the splitter: GSM basic and extension characters,
/// CR and LF, a non-GSM BMP letter, emoji, skin tones, ZWJ, variation
/// selectors, regional indicators, combining marks (BMP and astral), Hangul
/// jamo and a prepended concatenation mark.
fn tricky_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => prop::sample::select(vec!['a', 'Z', '0', ' ', '@', 'é', 'Ω', '£', '.']),
        2 => prop::sample::select(vec!['€', '[', ']', '{', '}', '^', '~', '|', '\\', '\u{0C}']),
        1 => prop::sample::select(vec!['\r', '\n']),
        1 => prop::sample::select(vec!['ж', 'ç', '`', '中']),
        2 => prop::sample::select(vec!['\u{1F600}', '\u{1F44D}', '\u{1F468}', '\u{1F469}']),
        1 => prop::sample::select(vec!['\u{1F3FB}', '\u{1F3FD}', '\u{200D}', '\u{FE0F}']),
        1 => prop::sample::select(vec!['\u{1F1FA}', '\u{1F1F8}']),
        1 => prop::sample::select(vec!['\u{0301}', '\u{0308}', '\u{1D165}']),
        1 => prop::sample::select(vec!['\u{1100}', '\u{1161}', '\u{11A8}', '\u{0600}']),
    ]
}

fn tricky_string(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(tricky_char(), 0..max).prop_map(|cs| cs.into_iter().collect())
}

fn gsm_basic_char() -> impl Strategy<Value = char> {
    prop::sample::select(vec![
        'a', 'Z', '0', ' ', '@', 'é', 'Ω', '£', '.', '\r', '\n',
    ])
}

fn gsm_char() -> impl Strategy<Value = char> {
    prop_oneof![
        gsm_basic_char(),
        prop::sample::select(vec!['€', '[', '{', '\u{0C}'])
    ]
}

/// Any body: tricky mixes, plain GSM text and arbitrary Unicode.
fn body() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => tricky_string(400),
        1 => prop::collection::vec(gsm_char(), 0..400).prop_map(|cs| cs.into_iter().collect()),
        1 => any::<String>(),
    ]
}

/// A variable's charset and a filling within it.
fn filled_variable() -> impl Strategy<Value = (VariableCharset, String)> {
    let collect = |cs: Vec<char>| cs.into_iter().collect::<String>();
    prop_oneof![
        prop::collection::vec(gsm_basic_char(), 0..40)
            .prop_map(move |cs| (VariableCharset::Gsm7Basic, collect(cs))),
        prop::collection::vec(gsm_char(), 0..40)
            .prop_map(move |cs| (VariableCharset::Gsm7Extended, collect(cs))),
        prop::collection::vec(tricky_char(), 0..40)
            .prop_map(move |cs| (VariableCharset::Unicode, collect(cs))),
        // Adversarial: long clusters (a base and a chain of combining marks,
        // or joiners) sized to waste as much of a part as possible.
        prop::collection::vec((tricky_char(), tricky_char(), 0usize..40), 1..4).prop_map(
            |clusters| {
                let mut fill = String::new();
                for (base, mark, n) in clusters {
                    let mark = if mark.is_ascii() { '\u{0301}' } else { mark };
                    fill.push(base);
                    fill.extend(std::iter::repeat_n(mark, n));
                }
                let fill: String = fill.chars().take(60).collect();
                (VariableCharset::Unicode, fill)
            }
        ),
    ]
}

fn literal_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => prop::collection::vec(gsm_char(), 0..150).prop_map(|cs| cs.into_iter().collect()),
        1 => tricky_string(80),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn split_parts_concatenate_to_the_body(s in body()) {
        prop_assert_eq!(split(&s).concat(), s);
    }

    #[test]
    fn count_agrees_with_split(s in body()) {
        prop_assert_eq!(count(&s).segments, split(&s).len());
    }

    #[test]
    fn every_part_fits_its_capacity(s in body()) {
        let c = count(&s);
        for part in split(&s) {
            prop_assert!(!part.is_empty());
            // Units in the message's encoding: an extension character counts
            // 2, so a straddling escape pair would overflow the part.
            prop_assert!(units_in(&part, c.encoding) <= c.per_segment);
        }
    }

    #[test]
    fn a_split_never_cuts_a_cluster_that_fits_a_part(s in body()) {
        let c = count(&s);
        let mut boundaries = Vec::new();
        let mut offset = 0;
        for part in split(&s) {
            offset += part.len();
            boundaries.push(offset);
        }
        for (start, cluster) in s.grapheme_indices(true) {
            let end = start + cluster.len();
            for b in &boundaries {
                if start < *b && *b < end {
                    prop_assert!(
                        units_in(cluster, c.encoding) > c.per_segment,
                        "cut a cluster of {} units", units_in(cluster, c.encoding)
                    );
                }
            }
        }
    }

    #[test]
    fn the_worst_case_bounds_every_filling(
        pieces in prop::collection::vec(literal_piece(), 0..4),
        variables in prop::collection::vec((filled_variable(), 0usize..20), 0..4),
    ) {
        let literal: Vec<&str> = pieces.iter().map(String::as_str).collect();
        let bounds: Vec<VariableBound> = variables
            .iter()
            .map(|((charset, fill), extra)| VariableBound {
                max_len: fill.chars().count() + extra,
                charset: *charset,
            })
            .collect();
        let mut body = String::new();
        let mut fills = variables.iter().map(|((_, fill), _)| fill);
        let mut lits = pieces.iter();
        loop {
            let (l, v) = (lits.next(), fills.next());
            if let Some(l) = l { body.push_str(l); }
            if let Some(v) = v { body.push_str(v); }
            if l.is_none() && v.is_none() { break; }
        }
        let worst = worst_case(&literal, &bounds);
        let got = count(&body);
        prop_assert!(worst.segments >= got.segments, "worst {:?} < filling {:?}", worst, got);
        prop_assert!(worst.characters >= got.characters);
        if worst.encoding == Encoding::Gsm7 {
            prop_assert_eq!(got.encoding, Encoding::Gsm7);
        }
        if worst.encoding == got.encoding {
            prop_assert!(worst.units >= got.units);
        }
    }
}
