//! Inbound reply classification: opt-out, help, opt-in, confirm, reschedule
//! or other, each with a tier (exact, clear, doubtful) and the id of the rule
//! that decided it.
//!
//! # Sources
//! - 47 CFR 64.1200(a)(10) (FCC 24-24, in force 2025-04-11): a reply of
//!   *stop, quit, end, revoke, opt out, cancel* or *unsubscribe* is a per se
//!   revocation, and any other wording a reasonable person reads as one must
//!   be honoured too. Rule ids `keyword.fcc.*`.
//! - Carrier and CTIA keyword lists: STOPALL, OPTOUT, ARRET, REMOVE, TD
//!   (`keyword.carrier.*`); HELP, INFO (`keyword.ctia.*`); START, UNSTOP, YES
//!   after an opt-out (`keyword.carrier.*`, `keyword.ctia.yes`).
//! - Spanish: ALTO, PARAR, BASTA, CANCELAR (`keyword.es.*`), AYUDA, SI.
//! - compliance-rules §3: do better than Twilio (exact single word only) and
//!   AWS (any body that begins with a keyword, so "Stop by at 3pm?" opts out).
//!
//! # Tiers
//! - `Exact`: the body, once punctuation, emoji, case, width and spacing are
//!   ignored, is only keywords ("STOP", " stop. ", "ＳＴＯＰ", "Opt-Out",
//!   "STOP STOP").
//! - `Clear`: a keyword with politeness or filler ("STOP PLEASE", "Stop. Thank
//!   you", "can you stop?"), a keyword about the texts ("stop texting me"), or
//!   free text a reasonable person reads that way ("don't text me anymore",
//!   "take me off your list", "wrong number").
//! - `Doubtful`: an opt-out keyword inside a sentence that may be about
//!   something else ("I want to cancel my appointment"), and a few phrases
//!   that may be revocations ("not interested"). Callers suppress **and**
//!   queue a human review with the rule id as the reason.
//!
//! # Precedence and design choices
//! - Opt-out wins: if any reading is an opt-out, at any tier, the result is an
//!   opt-out; help, opt-in and the reply grammar are consulted only after.
//! - A keyword is a whole word: "stopwatch", "endless", "unstoppable",
//!   "quitting time" are not keywords.
//! - A keyword right after a negation in the same clause is not a revocation
//!   ("don't stop reminding me", "please don't stop", "never stop") and gives
//!   `Other` with rule `other.negated_keyword`. Only the two words before the
//!   keyword are looked at, so "I don't want to stop ..." stays `Doubtful`:
//!   when unsure, the classifier errs towards suppression.
//! - STOP used as a verb of another sense ("stop by", "stop in", "stop at",
//!   "bus stop"), END as in "the end of the day" and QUIT with what was quit
//!   ("I quit smoking") give `Other` with rule `other.keyword_other_sense`,
//!   not an opt-out. "stop at once" and "quit texting me" are still one.
//! - Keywords in every language of [`KEYWORDS`]; when the plain reading
//!   finds no opt-out, a second reading folds look-alike letters (TS #39
//!   skeletons), joins spaced letters and squeezes held-down letters, and a
//!   lone near-miss of a keyword is a doubtful opt-out (see `docs/rules.md`).
//! - A phone's reaction (`Liked “…”`) quotes our own text and is `Other`.
//! - "can you stop?" is `Clear`: a request to stop, in reply to a text, reads
//!   as a revocation ("can", "could", "will", "would", "you" are fillers).
//! - "wrong number" is a `Clear` revocation: the person is not the patient.
//! - YES is an opt-in only when the sender has this number opted out
//!   ([`ReplyContext::opted_out`]). Otherwise it is a free-text confirmation
//!   (`Confirm`, `Clear`) when the last template asked for one (it has confirm
//!   codes) and `Other` when not. YES and SI are reserved words: a template
//!   may never use them as codes, because after an opt-out they mean opt-in.
//!   START, UNSTOP and SUBSCRIBE are opt-ins whatever the state; restoring
//!   only what was revoked is the consent ledger's job.
//! - A free-text confirmation ("confirm", "confirmed", "I'll be there") or
//!   reschedule request ("can we reschedule") is recognised only when the
//!   context has a reply grammar: without one there is no prompt to answer.
//!   A message that asks to reschedule and also confirms is a reschedule.
//!
//! # Speed
//! No regular expressions: one allocation for the normalized text, the words
//! kept as slices of it on the stack (a `Vec` only past 32 words), and
//! keyword tables as `match` on `&str`.

use std::collections::HashMap;
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};
use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

use unicode_security::confusable_detection::skeleton;

use crate::PolicyError;

mod fold;
mod freetext;
mod grammar;
mod keywords;
mod tokens;
mod words;

use fold::*;
use freetext::*;
use grammar::*;
use tokens::*;
use words::*;

pub use keywords::{Keyword, KEYWORDS, LANGUAGES};

/// Version of the classifier's rules and word lists.
pub const CLASSIFIER_VERSION: &str = "2026-12-06";

/// What a reply asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Intent {
    /// Revoke consent (suppress at once).
    OptOut,
    /// Ask for help (send the HELP text).
    Help,
    /// Opt back in (a recorded consent event).
    OptIn,
    /// Confirm the appointment the last template asked about.
    Confirm,
    /// Ask to reschedule that appointment.
    Reschedule,
    /// Anything else.
    Other,
}

/// How sure the classifier is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// The body is only the keyword or code.
    Exact,
    /// The intent is plain to a reasonable reader.
    Clear,
    /// The intent may be this; a human should review.
    Doubtful,
}

/// The reply codes of the template version last sent, e.g. confirm
/// `["C", "1"]`, reschedule `["R", "2"]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyGrammar {
    /// Codes that confirm.
    pub confirm: Vec<String>,
    /// Codes that ask to reschedule.
    pub reschedule: Vec<String>,
}

impl ReplyGrammar {
    /// Checks the codes: each must be one word of letters or digits, none may
    /// be a reserved keyword (every opt-out, help and opt-in word, including
    /// CANCEL, STOP, END, QUIT and YES; compliance-rules §3), and no code may
    /// appear twice.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let invalid = |reason: String| PolicyError::RuleTable {
            table: "reply_grammar",
            reason,
        };
        let codes = self.confirm.iter().chain(self.reschedule.iter());
        for (index, code) in codes.clone().enumerate() {
            let normalized = normalize(code);
            if normalized.is_empty() {
                return Err(invalid("a code is empty".to_owned()));
            }
            let tokens = Tokens::of(&normalized);
            let word = match tokens.as_slice() {
                [only] if only.text == normalized => only.text,
                _ => {
                    return Err(invalid(format!(
                        "code {normalized:?} is not one word of letters or digits"
                    )))
                }
            };
            if is_reserved(word) {
                return Err(invalid(format!(
                    "code {normalized:?} is a reserved keyword"
                )));
            }
            if codes
                .clone()
                .skip(index + 1)
                .any(|other| normalize(other) == normalized)
            {
                return Err(invalid(format!("code {normalized:?} appears twice")));
            }
        }
        Ok(())
    }
}

/// What the classifier knows about the conversation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyContext {
    /// The reply grammar of the template version last sent, if it had one.
    pub grammar: Option<ReplyGrammar>,
    /// The sender currently has this number opted out, so YES means opt-in.
    pub opted_out: bool,
}

/// The classifier's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Classification {
    /// What the reply asks for.
    pub intent: Intent,
    /// How sure the classifier is.
    pub tier: Tier,
    /// Stable id of the rule that decided, e.g. `keyword.fcc.stop`,
    /// `freetext.revocation.stop_texting`, `grammar.confirm`.
    pub rule: String,
    /// The keyword, code or phrase matched, normalized (never the whole body
    /// unless the body is only that).
    pub matched: Option<String>,
}

/// Folds a body for word matching: compatibility decomposition (NFKD, so
/// full-width, circled and mathematical letters become plain ones, as NFKC
/// would), combining marks dropped (so accents fold: "arrêt" = "arret",
/// "más" = "mas"), lower case, curly quotes and apostrophes to `'` and `"`,
/// Unicode dashes to `-`, zero-width characters dropped, runs of whitespace
/// to one space, trimmed. Punctuation and emoji are kept.
pub fn normalize(body: &str) -> String {
    normalize_with(body, true)
}

/// [`normalize`], keeping case when `lower` is false (look-alike folding
/// needs it: Greek `Ν` looks like N, `ν` like v).
fn normalize_with(body: &str, lower: bool) -> String {
    let mut out = Normalizer {
        text: String::with_capacity(body.len()),
        space: false,
    };
    if body.is_ascii() {
        // ASCII is already in every normal form; skip the decomposition.
        for b in body.bytes() {
            out.push(char::from(if lower { b.to_ascii_lowercase() } else { b }));
        }
    } else {
        for c in body.nfkd() {
            if is_combining_mark(c) {
                continue;
            }
            // Vietnamese đ has no decomposition: fold it by hand.
            let c = match c {
                '\u{0111}' => 'd',
                '\u{0110}' => 'D',
                other => other,
            };
            if lower {
                for lower in c.to_lowercase() {
                    out.push(lower);
                }
            } else {
                out.push(c);
            }
        }
        // Decomposition splits Hangul syllables into jamo: compose them
        // again so that Korean words compare as written.
        if out
            .text
            .chars()
            .any(|c| ('\u{1100}'..='\u{11FF}').contains(&c))
        {
            return out.text.nfc().collect();
        }
    }
    out.text
}

/// Builds the normalized text one character at a time.
struct Normalizer {
    text: String,
    /// A whitespace run is pending: emit one space before the next character.
    space: bool,
}

impl Normalizer {
    fn push(&mut self, c: char) {
        let c = match c {
            '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}' | '\u{2032}' | '\u{02BC}' | '`' => {
                '\''
            }
            '\u{201C}' | '\u{201D}' | '\u{201E}' | '\u{201F}' | '\u{2033}' => '"',
            '\u{2010}'..='\u{2015}' | '\u{2212}' => '-',
            // Soft hyphen, zero-width space/joiners, direction marks, word
            // joiner, BOM: invisible, and used to dodge keyword filters.
            '\u{00AD}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{2060}'..='\u{2064}'
            | '\u{FEFF}' => return,
            other => other,
        };
        if c.is_whitespace() || c.is_control() {
            self.space = !self.text.is_empty();
            return;
        }
        if self.space {
            self.text.push(' ');
            self.space = false;
        }
        self.text.push(c);
    }
}

/// Classifies an inbound reply. Never fails: anything unrecognised is
/// `Other`.
pub fn classify(body: &str, ctx: &ReplyContext) -> Classification {
    let normalized = normalize(body);
    if let Some(reaction) = reaction(&normalized) {
        return reaction;
    }
    // "wrong #": the sign is not a word, so say it.
    let normalized = if normalized.contains('#') {
        normalized
            .replace("wrong #", "wrong number")
            .replace("wrong#", "wrong number")
    } else {
        normalized
    };
    let tokens = Tokens::of(&normalized);
    let t = tokens.as_slice();
    let found = classify_tokens(t, ctx);
    if found.intent == Intent::OptOut {
        return found.into_classification(t);
    }
    // Opt-out wins: look again with look-alike letters and spaced letters
    // folded, and for near-misses of a keyword written alone.
    let near_miss = found.intent == Intent::Other;
    if !may_fold(t) {
        // Plain lower-case words with nothing to fold, join or squeeze (most
        // replies): only a near-miss of a keyword is left to look for.
        return near_miss
            .then(|| near_keyword(t))
            .flatten()
            .map_or_else(|| found.into_classification(t), near_classification);
    }
    let cased = normalize_with(body, false);
    let cased_tokens = Tokens::of(&cased);
    folded_opt_out(cased_tokens.as_slice(), near_miss)
        .unwrap_or_else(|| found.into_classification(t))
}

// ---------------------------------------------------------------------------
// Word tables

/// FNV-1a: the keyword maps are looked up several times per word of every
/// reply, with short keys, where SipHash's setup costs more than the hash.
#[derive(Default)]
struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut hash = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for byte in bytes {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = hash;
    }
}

type FnvMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<Fnv>>;

/// The keywords by their first word, each with its length in words,
/// longest first.
type ByFirstWord = FnvMap<&'static str, Vec<(&'static Keyword, usize)>>;

static BY_FIRST_WORD: LazyLock<ByFirstWord> = LazyLock::new(|| {
    let mut map: ByFirstWord = FnvMap::default();
    for k in KEYWORDS {
        let mut words = k.word.split(' ');
        let first = words.next().unwrap_or_default();
        map.entry(first).or_default().push((k, 1 + words.count()));
    }
    for entries in map.values_mut() {
        entries.sort_by_key(|entry| std::cmp::Reverse(entry.1));
    }
    map
});

/// Opt-out keywords by their confusable fold (see [`fold_char`]), with and
/// without the spaces of a multi-word keyword.
static FOLDED: LazyLock<FnvMap<String, &'static Keyword>> = LazyLock::new(|| {
    let mut map = FnvMap::default();
    for k in KEYWORDS.iter().filter(|k| k.intent == Intent::OptOut) {
        let upper = k.word.to_uppercase();
        for form in [k.word, upper.as_str()] {
            map.entry(fold_str(form)).or_insert(k);
            map.entry(fold_str(&form.replace(' ', ""))).or_insert(k);
        }
    }
    map
});

/// Which table a scan reads: the normalized words, or their folds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lexicon {
    Plain,
    Folded,
}

/// The keyword starting at word `i` that `want` accepts, and how many words
/// it spans (the longest match).
fn keyword_at(
    t: &[Token<'_>],
    i: usize,
    want: impl Fn(&Keyword) -> bool,
) -> Option<(&'static Keyword, usize)> {
    let entries = BY_FIRST_WORD.get(text(t, i))?;
    entries
        .iter()
        .find(|(k, len)| {
            want(k)
                && k.word
                    .split(' ')
                    .enumerate()
                    .all(|(n, word)| n < *len && text(t, i + n) == word)
        })
        .copied()
}

/// An opt-out keyword starting at word `i`.
fn opt_out_at(lex: Lexicon, t: &[Token<'_>], i: usize) -> Option<(&'static Keyword, usize)> {
    match lex {
        Lexicon::Plain => keyword_at(t, i, |k| k.intent == Intent::OptOut),
        Lexicon::Folded => {
            // One to three words, with or without the spaces between them
            // ("st op", "opt out"); pieces past the first are short, so two
            // ordinary words never join into a keyword.
            for len in (1..=3usize).rev() {
                if i + len > t.len() {
                    continue;
                }
                let words = t.get(i..i + len).unwrap_or_default();
                let spaced = words.iter().map(|w| w.text).collect::<Vec<_>>();
                if let Some(k) = FOLDED.get(&spaced.join(" ")) {
                    return Some((k, len));
                }
                if len > 1 && spaced.iter().all(|w| w.chars().count() <= 3) {
                    if let Some(k) = FOLDED.get(&spaced.concat()) {
                        return Some((k, len));
                    }
                }
            }
            None
        }
    }
}

/// Affixes around a keyword written without spaces that do not change it:
/// please, I want, thanks, the particles and endings of a polite request.
const UNSPACED_FILLER: &[&str] = &[
    "我要",
    "我想",
    "请",
    "請",
    "麻烦",
    "麻煩",
    "帮我",
    "幫我",
    "谢谢",
    "謝謝",
    "了",
    "吧",
    "的",
    "所有",
    "全部",
    "短信",
    "简讯",
    "簡訊",
    "信息",
    "訊息",
    "해주세요",
    "주세요",
    "하세요",
    "합니다",
    "해요",
    "해",
    "요",
    "부탁",
    "드립니다",
    "문자",
    "모두",
];

/// An opt-out keyword inside a longer word of a script written without
/// spaces, and whether the rest of the word is only polite filler.
fn unspaced_opt_out(word: &str) -> Option<(&'static Keyword, bool)> {
    if word.is_ascii() {
        return None;
    }
    let k = KEYWORDS
        .iter()
        .find(|k| k.unspaced && k.intent == Intent::OptOut && word.contains(k.word))?;
    let mut rest = word.replacen(k.word, "", 1);
    // Strip filler affixes, longest first, until nothing is left or nothing
    // more comes off.
    loop {
        let before = rest.len();
        for affix in UNSPACED_FILLER {
            rest = rest.replace(affix, "");
        }
        if rest.is_empty() || rest.len() == before {
            break;
        }
    }
    Some((k, rest.is_empty()))
}

/// Words a template may never use as a reply code (compliance-rules §3):
/// every single-word keyword, and the words of "opt out".
fn is_reserved(w: &str) -> bool {
    KEYWORDS
        .iter()
        .any(|k| k.word == w || (k.unspaced && w.contains(k.word)))
        || matches!(w, "opt" | "out")
}

// ---------------------------------------------------------------------------
// Classification

/// What matched, as a static canonical form or a span of words.
#[derive(Debug, Clone, Copy)]
enum Matched {
    None,
    Static(&'static str),
    /// Words `start..end` of the body, joined by single spaces.
    Span(usize, usize),
}

/// The internal result, converted to a [`Classification`] at the end so
/// that only the final answer allocates.
#[derive(Debug, Clone, Copy)]
struct Found {
    intent: Intent,
    tier: Tier,
    rule: &'static str,
    matched: Matched,
}

impl Found {
    fn new(intent: Intent, tier: Tier, rule: &'static str, matched: Matched) -> Self {
        Self {
            intent,
            tier,
            rule,
            matched,
        }
    }

    fn into_classification(self, t: &[Token<'_>]) -> Classification {
        let matched = match self.matched {
            Matched::None => None,
            Matched::Static(s) => Some(s.to_owned()),
            Matched::Span(start, end) => {
                let mut joined = String::new();
                for token in t.iter().take(end).skip(start) {
                    if !joined.is_empty() {
                        joined.push(' ');
                    }
                    joined.push_str(token.text);
                }
                Some(joined)
            }
        };
        Classification {
            intent: self.intent,
            tier: self.tier,
            rule: self.rule.to_owned(),
            matched,
        }
    }
}

fn classify_tokens(t: &[Token<'_>], ctx: &ReplyContext) -> Found {
    if t.is_empty() {
        return Found::new(Intent::Other, Tier::Clear, "other.no_words", Matched::None);
    }
    let note = match opt_out(Lexicon::Plain, t) {
        OptOutScan::Found(found) => return found,
        OptOutScan::Nothing(note) => note,
    };
    if let Some(found) = keyword_intent(t, Intent::Help, ctx.opted_out) {
        return found;
    }
    if let Some(found) = keyword_intent(t, Intent::OptIn, ctx.opted_out) {
        return found;
    }
    if let Some(grammar) = &ctx.grammar {
        if let Some(found) = grammar_code(t, grammar) {
            return found;
        }
        if let Some(found) = grammar_free_text(t, grammar) {
            return found;
        }
    }
    note.unwrap_or(Found::new(
        Intent::Other,
        Tier::Clear,
        "other.no_match",
        Matched::None,
    ))
}

/// The outcome of the opt-out pass: an opt-out, or nothing with an optional
/// note for the `Other` answer (a negated or other-sense keyword).
enum OptOutScan {
    Found(Found),
    Nothing(Option<Found>),
}

fn opt_out(lex: Lexicon, t: &[Token<'_>]) -> OptOutScan {
    // Exact: nothing but keywords.
    let mut first: Option<&'static Keyword> = None;
    let mut i = 0;
    let mut only_keywords = true;
    while i < t.len() {
        match opt_out_at(lex, t, i) {
            Some((k, len)) => {
                first.get_or_insert(k);
                i += len;
            }
            None => {
                only_keywords = false;
                break;
            }
        }
    }
    if only_keywords {
        if let Some(k) = first {
            return OptOutScan::Found(Found::new(
                Intent::OptOut,
                Tier::Exact,
                k.rule,
                Matched::Static(k.word),
            ));
        }
    }

    // Keywords inside a longer message.
    let mut doubtful = None;
    let mut note = None;
    let mut i = 0;
    while i < t.len() {
        let Some((k, len)) = opt_out_at(lex, t, i) else {
            // A keyword inside a word of a script written without spaces.
            if let Some((k, filler_only)) = unspaced_opt_out(text(t, i)) {
                if filler_only && only_filler_besides(lex, t, i, 1) {
                    return OptOutScan::Found(Found::new(
                        Intent::OptOut,
                        Tier::Clear,
                        k.rule,
                        Matched::Static(k.word),
                    ));
                }
                doubtful.get_or_insert(Found::new(
                    Intent::OptOut,
                    Tier::Doubtful,
                    "freetext.doubtful.keyword_in_sentence",
                    Matched::Static(k.word),
                ));
            }
            i += 1;
            continue;
        };
        let canonical = k.word;
        if !k.in_sentence {
            // A word with a common other sense counts only with filler.
            if only_filler_besides(lex, t, i, len) {
                return OptOutScan::Found(Found::new(
                    Intent::OptOut,
                    Tier::Clear,
                    k.rule,
                    Matched::Static(canonical),
                ));
            }
        } else if let Some(negator) = negated_by(t, i) {
            note.get_or_insert(Found::new(
                Intent::Other,
                Tier::Clear,
                "other.negated_keyword",
                Matched::Span(negator, i + len),
            ));
        } else if other_sense(t, i, len, canonical) {
            note.get_or_insert(Found::new(
                Intent::Other,
                Tier::Clear,
                "other.keyword_other_sense",
                Matched::Span(i, i + len + 1),
            ));
        } else if let Some(end) = texting_word_after(t, i + len) {
            return OptOutScan::Found(Found::new(
                Intent::OptOut,
                Tier::Clear,
                "freetext.revocation.stop_texting",
                Matched::Span(i, end + 1),
            ));
        } else if only_filler_besides(lex, t, i, len) {
            return OptOutScan::Found(Found::new(
                Intent::OptOut,
                Tier::Clear,
                k.rule,
                Matched::Static(canonical),
            ));
        } else {
            doubtful.get_or_insert(Found::new(
                Intent::OptOut,
                Tier::Doubtful,
                "freetext.doubtful.keyword_in_sentence",
                Matched::Static(canonical),
            ));
        }
        i += len;
    }

    // Free-text revocations without a keyword.
    for i in 0..t.len() {
        match revocation_phrase_at(t, i) {
            Some(found) if found.tier == Tier::Clear => return OptOutScan::Found(found),
            Some(found) => {
                doubtful.get_or_insert(found);
            }
            None => {}
        }
    }
    match doubtful {
        Some(found) => OptOutScan::Found(found),
        None => OptOutScan::Nothing(note),
    }
}

/// The negation among the two words before word `i`, in the same clause, if
/// there is one ("don't stop", "please don't ever stop"; not "never mind,
/// stop" or "never mind stop").
fn negated_by(t: &[Token<'_>], i: usize) -> Option<usize> {
    for back in 1..=2 {
        let j = i.checked_sub(back)?;
        // A clause break between word j and word i ends the look-back.
        if t.get(j + 1).is_some_and(|next| next.break_before) {
            return None;
        }
        let w = text(t, j);
        if is_negator(w) && !(w == "never" && text(t, j + 1) == "mind") {
            return Some(j);
        }
    }
    None
}

/// Whether the keyword at `i..i + len` is used in another sense: STOP as in
/// "stop by / in / at / over", "bus stop"; END as in "the end of", "end up".
fn other_sense(t: &[Token<'_>], i: usize, len: usize, canonical: &str) -> bool {
    let next = if joined(t, i + len - 1) {
        text(t, i + len)
    } else {
        ""
    };
    let prev = match i.checked_sub(1) {
        Some(p) if joined(t, p) => text(t, p),
        _ => "",
    };
    match canonical {
        "stop" => {
            let after = text(t, i + len + 1);
            matches!(
                next,
                "by" | "in" | "over" | "sign" | "signs" | "light" | "lights"
            ) || (next == "at" && after != "once")
                || matches!(
                    prev,
                    "bus"
                        | "pit"
                        | "next"
                        | "last"
                        | "first"
                        | "full"
                        | "one"
                        | "truck"
                        | "train"
                        | "rest"
                        | "non"
                )
        }
        // "I quit smoking", "quit my job": quitting something else.
        "quit" => {
            (next.len() > 4 && next.ends_with("ing") && !is_texting_word(next))
                || matches!(next, "job" | "work" | "school")
                || (matches!(next, "my" | "the") && matches!(text(t, i + len + 1), "job" | "work"))
        }
        "end" => {
            matches!(next, "of" | "up" | "at" | "date" | "time" | "result")
                || matches!(
                    prev,
                    "dead" | "deep" | "back" | "front" | "rear" | "high" | "low"
                )
        }
        _ => false,
    }
}

/// The index of a texting word among the three words after `from`, in the
/// same clause ("stop texting", "stop sending me these texts").
fn texting_word_after(t: &[Token<'_>], from: usize) -> Option<usize> {
    (from..from + 4)
        .take_while(|&j| j < t.len() && !t.get(j).is_some_and(|tok| tok.break_before))
        .find(|&j| is_texting_word(text(t, j)))
}

/// Whether every word outside `i..i + len` is filler, a texting word or
/// another keyword.
fn only_filler_besides(lex: Lexicon, t: &[Token<'_>], i: usize, len: usize) -> bool {
    t.iter().enumerate().all(|(j, token)| {
        (i..i + len).contains(&j)
            || is_filler(token.text)
            // "stop at once", "never mind, stop".
            || (token.text == "at" && text(t, j + 1) == "once")
            || (token.text == "never" && text(t, j + 1) == "mind")
            || (token.text == "mind" && j.checked_sub(1).is_some_and(|p| text(t, p) == "never"))
            || is_texting_word(token.text)
            || opt_out_at(lex, t, j).is_some()
            || matches!(token.text, "opt" | "out" | "no" | "it")
            // A preamble that asks for the keyword: "I want to
            // unsubscribe", "I asked you to stop", "I'd like to opt out".
            || (j < i && is_preamble(token.text))
    })
}

/// HELP or opt-in: only keywords is `Exact`, a keyword with filler `Clear`.
/// Opt-in words such as YES count only while the number is opted out.
fn keyword_intent(t: &[Token<'_>], intent: Intent, opted_out: bool) -> Option<Found> {
    let want = |k: &Keyword| k.intent == intent && (opted_out || !k.after_opt_out);
    let mut first: Option<(&'static str, usize, usize)> = None;
    let mut all_keywords = true;
    let mut all_filler = true;
    let mut i = 0;
    while i < t.len() {
        if let Some((k, len)) = keyword_at(t, i, want) {
            first.get_or_insert((k.rule, i, i + len));
            i += len;
            continue;
        }
        let word = text(t, i);
        let unspaced = if word.is_ascii() {
            None
        } else {
            KEYWORDS
                .iter()
                .find(|k| k.unspaced && want(k) && word.contains(k.word))
        };
        match unspaced {
            // A keyword inside a word written without spaces ("请帮助").
            Some(k) => {
                first.get_or_insert((k.rule, i, i + 1));
                all_keywords = false;
            }
            None => {
                all_keywords = false;
                all_filler &= is_filler(word) || is_texting_word(word);
            }
        }
        i += 1;
    }
    let (rule, start, end) = first?;
    let matched = Matched::Span(start, end);
    if all_keywords {
        Some(Found::new(intent, Tier::Exact, rule, matched))
    } else if all_filler {
        Some(Found::new(intent, Tier::Clear, rule, matched))
    } else {
        None
    }
}
