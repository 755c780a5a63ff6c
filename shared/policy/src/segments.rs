//! SMS encoding, segment counts and exact splits.
//!
//! Sources: 3GPP TS 23.038 §6.2.1 (the GSM 7-bit default alphabet) and
//! §6.2.1.1 (its extension table, reached through the escape code 0x1B, so
//! every extension character costs two septets); 3GPP TS 23.040 §9.2.3.24
//! (concatenated short messages: a 6-byte user data header leaves 153 septets
//! or 134 octets = 67 UCS-2 code units per part). compliance-rules §8 adds the
//! product rules: one non-GSM character makes the whole message UCS-2, and a
//! split never separates an escape pair, a surrogate pair or a grapheme.
//!
//! # Splitting
//! A body that fits one part (160 septets / 70 code units) is one part. A
//! longer body is packed greedily into parts of 153 septets / 67 code units,
//! one extended grapheme cluster (UAX #29, via `unicode-segmentation`) at a
//! time. A cluster that does not fit in what is left of the current part moves
//! whole to the next part; this is what keeps escape pairs, surrogate pairs,
//! flags, ZWJ sequences, skin tones and combining accents together. As a last
//! resort, a single cluster longer than a whole part (possible only with long
//! combining-mark chains) is split at scalar boundaries, starting in the
//! current part; a surrogate pair is still never split because a scalar is
//! placed whole.
//!
//! # Empty bodies
//! An empty body has 0 segments and splits into no parts: there is nothing to
//! send. (Carriers do deliver an empty SMS as one segment, but the product
//! never sends one: templates must name the sender, compliance-rules §8.)
//! Any non-empty body has at least one segment.

use serde::{Deserialize, Serialize};
use unicode_segmentation::UnicodeSegmentation;

/// Version of the segment rules: the 3GPP specifications they implement.
pub const SEGMENTS_VERSION: &str = "3GPP TS 23.038 / 23.040";

/// Septets in a single-part GSM-7 message (TS 23.040: 140 octets * 8 / 7).
pub const GSM7_SINGLE_UNITS: usize = 160;
/// Septets per part of a concatenated GSM-7 message (6-byte UDH, TS 23.040).
pub const GSM7_PART_UNITS: usize = 153;
/// UTF-16 code units in a single-part UCS-2 message (140 octets / 2).
pub const UCS2_SINGLE_UNITS: usize = 70;
/// UTF-16 code units per part of a concatenated UCS-2 message (134 octets / 2).
pub const UCS2_PART_UNITS: usize = 67;

/// The data coding a message needs (TS 23.038 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// GSM 7-bit default alphabet plus its extension table.
    Gsm7,
    /// UCS-2 (in practice UTF-16: astral characters take a surrogate pair).
    Ucs2,
}

impl Encoding {
    /// Units that fit a message sent as one part.
    pub fn single_part_units(self) -> usize {
        match self {
            Self::Gsm7 => GSM7_SINGLE_UNITS,
            Self::Ucs2 => UCS2_SINGLE_UNITS,
        }
    }

    /// Units that fit each part of a concatenated message.
    pub fn part_units(self) -> usize {
        match self {
            Self::Gsm7 => GSM7_PART_UNITS,
            Self::Ucs2 => UCS2_PART_UNITS,
        }
    }
}

/// The size of a message body on the air.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SegmentCount {
    /// The encoding the whole body needs.
    pub encoding: Encoding,
    /// Septets for GSM-7 (extension characters count 2), UTF-16 code units
    /// for UCS-2 (astral characters such as emoji count 2).
    pub units: usize,
    /// Unicode scalar values in the body.
    pub characters: usize,
    /// Message parts a handset receives (0 for an empty body).
    pub segments: usize,
    /// Capacity of each part: 160 or 153 for GSM-7, 70 or 67 for UCS-2.
    pub per_segment: usize,
}

/// What a template variable may contain, for worst-case sizing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VariableCharset {
    /// Only characters of the GSM-7 default alphabet (1 septet each).
    Gsm7Basic,
    /// The default alphabet and its extension table (up to 2 septets each).
    Gsm7Extended,
    /// Any Unicode text (forces UCS-2; up to 2 code units per character).
    Unicode,
}

/// The bound a template declares for one variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct VariableBound {
    /// Maximum length in Unicode scalar values.
    pub max_len: usize,
    /// What the variable may contain.
    pub charset: VariableCharset,
}

/// Whether `c` is one of the 127 characters of the GSM 7-bit default alphabet
/// (TS 23.038 §6.2.1; code 0x1B is the escape to the extension table, not a
/// character, so U+001B is not in the alphabet).
pub fn is_gsm7_basic(c: char) -> bool {
    matches!(
        c,
        // ASCII part of the table: LF (0x0A), CR (0x0D), 0x20-0x3F, '@' (0x00)
        // and A-Z, '_' (0x11), a-z. Not included: ` and the ASCII characters
        // that live in the extension table ([ \ ] ^ { | } ~).
        '\n' | '\r'
            | ' '..='?'
            | '@'..='Z'
            | '_'
            | 'a'..='z'
            // Non-ASCII part, in table order. Code points spelled out because
            // look-alikes (the Ohm sign U+2126, the Greek small letters, ç) are
            // not in the table.
            | '\u{00A3}' // £ 0x01
            | '\u{00A5}' // ¥ 0x03
            | '\u{00E8}' // è 0x04
            | '\u{00E9}' // é 0x05
            | '\u{00F9}' // ù 0x06
            | '\u{00EC}' // ì 0x07
            | '\u{00F2}' // ò 0x08
            | '\u{00C7}' // Ç 0x09 (capital only)
            | '\u{00D8}' // Ø 0x0B
            | '\u{00F8}' // ø 0x0C
            | '\u{00C5}' // Å 0x0E
            | '\u{00E5}' // å 0x0F
            | '\u{0394}' // Δ 0x10
            | '\u{03A6}' // Φ 0x12
            | '\u{0393}' // Γ 0x13
            | '\u{039B}' // Λ 0x14
            | '\u{03A9}' // Ω 0x15
            | '\u{03A0}' // Π 0x16
            | '\u{03A8}' // Ψ 0x17
            | '\u{03A3}' // Σ 0x18
            | '\u{0398}' // Θ 0x19
            | '\u{039E}' // Ξ 0x1A
            | '\u{00C6}' // Æ 0x1C
            | '\u{00E6}' // æ 0x1D
            | '\u{00DF}' // ß 0x1E
            | '\u{00C9}' // É 0x1F
            | '\u{00A4}' // ¤ 0x24
            | '\u{00A1}' // ¡ 0x40
            | '\u{00C4}' // Ä 0x5B
            | '\u{00D6}' // Ö 0x5C
            | '\u{00D1}' // Ñ 0x5D
            | '\u{00DC}' // Ü 0x5E
            | '\u{00A7}' // § 0x5F
            | '\u{00BF}' // ¿ 0x60
            | '\u{00E4}' // ä 0x7B
            | '\u{00F6}' // ö 0x7C
            | '\u{00F1}' // ñ 0x7D
            | '\u{00FC}' // ü 0x7E
            | '\u{00E0}' // à 0x7F
    )
}

/// Whether `c` is one of the 10 characters of the GSM-7 extension table
/// (TS 23.038 §6.2.1.1), each sent as escape 0x1B plus a code: two septets.
pub fn is_gsm7_extension(c: char) -> bool {
    matches!(
        c,
        '\u{000C}' // form feed, 0x1B 0x0A
            | '^' // 0x1B 0x14
            | '{' // 0x1B 0x28
            | '}' // 0x1B 0x29
            | '\\' // 0x1B 0x2F
            | '[' // 0x1B 0x3C
            | '~' // 0x1B 0x3D
            | ']' // 0x1B 0x3E
            | '|' // 0x1B 0x40
            | '\u{20AC}' // €, 0x1B 0x65
    )
}

/// Septets `c` takes in GSM-7, or `None` when it is not representable.
pub fn gsm7_septets(c: char) -> Option<usize> {
    if is_gsm7_basic(c) {
        Some(1)
    } else if is_gsm7_extension(c) {
        Some(2)
    } else {
        None
    }
}

/// The encoding `body` needs: GSM-7 when every character is in the default
/// alphabet or its extension table, otherwise UCS-2.
pub fn encoding_of(body: &str) -> Encoding {
    if body.chars().all(|c| gsm7_septets(c).is_some()) {
        Encoding::Gsm7
    } else {
        Encoding::Ucs2
    }
}

/// Units one character takes in `encoding`. Only called with characters the
/// encoding can carry; a non-GSM character under GSM-7 counts 2 (the most a
/// GSM-7 character can cost) rather than panicking.
fn char_units(c: char, encoding: Encoding) -> usize {
    match encoding {
        Encoding::Gsm7 => gsm7_septets(c).unwrap_or(2),
        Encoding::Ucs2 => c.len_utf16(),
    }
}

/// Units a string takes in `encoding`.
fn str_units(s: &str, encoding: Encoding) -> usize {
    match encoding {
        Encoding::Gsm7 => s.chars().map(|c| char_units(c, encoding)).sum(),
        Encoding::Ucs2 => s.encode_utf16().count(),
    }
}

/// One step of the packing: text to append to the current part, or the end
/// of the current part.
enum Piece<'a> {
    Text(&'a str),
    Char(char),
    Break,
}

/// Packs a body that does not fit one part into parts of
/// `encoding.part_units()`, one grapheme cluster at a time (see module docs).
/// The one packing routine behind both [`count`] and [`split`], so they agree.
fn pack<'a>(body: &'a str, encoding: Encoding, mut emit: impl FnMut(Piece<'a>)) {
    let capacity = encoding.part_units();
    let mut used = 0usize;
    for cluster in body.graphemes(true) {
        let units = str_units(cluster, encoding);
        if used + units <= capacity {
            emit(Piece::Text(cluster));
            used += units;
        } else if units <= capacity {
            // Does not fit what is left, fits a fresh part: move it whole.
            // `used > 0` here because `units <= capacity < used + units`.
            emit(Piece::Break);
            emit(Piece::Text(cluster));
            used = units;
        } else {
            // Last resort: a cluster longer than a whole part. Place it one
            // scalar at a time so that at least surrogate pairs stay whole.
            for c in cluster.chars() {
                let cu = char_units(c, encoding);
                if used + cu > capacity {
                    emit(Piece::Break);
                    used = 0;
                }
                emit(Piece::Char(c));
                used += cu;
            }
        }
    }
}

/// Counts the units, characters and segments of `body` without allocating.
/// Always agrees with [`split`]: `count(b).segments == split(b).len()`.
pub fn count(body: &str) -> SegmentCount {
    let encoding = encoding_of(body);
    let units = str_units(body, encoding);
    let characters = body.chars().count();
    let segments = if units == 0 {
        0
    } else if units <= encoding.single_part_units() {
        1
    } else {
        let mut parts = 1usize;
        pack(body, encoding, |piece| {
            if matches!(piece, Piece::Break) {
                parts += 1;
            }
        });
        parts
    };
    SegmentCount {
        encoding,
        units,
        characters,
        segments,
        per_segment: per_segment(encoding, segments),
    }
}

/// The capacity of each part for a message of `segments` parts.
fn per_segment(encoding: Encoding, segments: usize) -> usize {
    if segments > 1 {
        encoding.part_units()
    } else {
        encoding.single_part_units()
    }
}

/// Splits `body` into the parts a handset receives, in order. Concatenating
/// the parts gives back `body`. An empty body gives no parts.
pub fn split(body: &str) -> Vec<String> {
    let encoding = encoding_of(body);
    let units = str_units(body, encoding);
    if units == 0 {
        return Vec::new();
    }
    if units <= encoding.single_part_units() {
        return vec![body.to_owned()];
    }
    let mut parts = Vec::new();
    let mut current = String::new();
    pack(body, encoding, |piece| match piece {
        Piece::Text(s) => current.push_str(s),
        Piece::Char(c) => current.push(c),
        Piece::Break => parts.push(std::mem::take(&mut current)),
    });
    if !current.is_empty() {
        parts.push(current);
    }
    parts
}

/// The largest a message built from a template can be: `literal` pieces with
/// `variables` in between (`literal[0] var[0] literal[1] var[1] ...`; extra
/// pieces of either list are appended in order), every variable at its
/// maximum length in its worst characters.
///
/// - `encoding`: UCS-2 when the literal text needs it or any `Unicode`
///   variable may be non-empty, since one character forces it; else GSM-7.
/// - `units` and `characters`: the exact maximum in that encoding
///   (extension characters 2 septets; `Unicode` characters 2 code units).
/// - `segments`: an upper bound that every filling within the bounds meets.
///   For GSM-7 templates it is exact: it is the count of the filling with
///   every extended character at 2 septets, and the greedy packing never
///   needs fewer parts when a character grows or is added (each part then
///   holds at least 152 septets, the loss being at most one escape pair or a
///   CR LF pair). For UCS-2 templates with variables, grapheme clusters
///   built from variable content (long combining-mark chains, ZWJ sequences
///   joining the literal text) can move whole and waste up to a part, so the
///   bound also adds every unit that could belong to a cluster of 3 or more
///   units (see [`ucs2_segment_bound`]); it can overstate ordinary fillings
///   by a part or two, which is the safe side for cost and limit checks.
pub fn worst_case(literal: &[&str], variables: &[VariableBound]) -> SegmentCount {
    let literal_is_gsm = literal
        .iter()
        .all(|piece| encoding_of(piece) == Encoding::Gsm7);
    let any_unicode = variables
        .iter()
        .any(|v| v.charset == VariableCharset::Unicode && v.max_len > 0);
    let any_content = variables.iter().any(|v| v.max_len > 0);
    let characters = literal
        .iter()
        .map(|piece| piece.chars().count())
        .sum::<usize>()
        + variables.iter().map(|v| v.max_len).sum::<usize>();

    // The GSM-7 filling with every variable character at its most septets.
    // Unicode variables may also be filled with GSM-7 text; then they cost
    // up to 2 septets a character too.
    let gsm = literal_is_gsm.then(|| {
        count(&fill(literal, variables, |charset| match charset {
            VariableCharset::Gsm7Basic => 'a',
            VariableCharset::Gsm7Extended | VariableCharset::Unicode => '\u{20AC}',
        }))
    });
    if !any_unicode {
        if let Some(gsm) = gsm {
            return SegmentCount { characters, ..gsm };
        }
    }

    // UCS-2: GSM-7 characters are all in the BMP (1 code unit); a Unicode
    // character costs at most a surrogate pair, e.g. U+1F600, which is also a
    // grapheme of its own.
    let ucs2 = count(&fill(literal, variables, |charset| match charset {
        VariableCharset::Gsm7Basic | VariableCharset::Gsm7Extended => 'a',
        VariableCharset::Unicode => '\u{1F600}',
    }));
    let mut segments = ucs2.segments;
    if any_content {
        segments = segments.max(ucs2_segment_bound(literal, variables, ucs2.units));
    }
    if let Some(gsm) = gsm {
        segments = segments.max(gsm.segments);
    }
    SegmentCount {
        encoding: Encoding::Ucs2,
        units: ucs2.units,
        characters,
        segments,
        per_segment: per_segment(Encoding::Ucs2, segments),
    }
}

/// Builds the body of a template with each variable at its maximum length,
/// filled with the character `pick` chooses for its charset.
fn fill(
    literal: &[&str],
    variables: &[VariableBound],
    pick: impl Fn(VariableCharset) -> char,
) -> String {
    let mut body = String::new();
    let mut pieces = literal.iter();
    let mut vars = variables.iter();
    loop {
        let piece = pieces.next();
        if let Some(piece) = piece {
            body.push_str(piece);
        }
        let var = vars.next();
        if let Some(var) = var {
            let c = pick(var.charset);
            body.extend(std::iter::repeat_n(c, var.max_len));
        }
        if piece.is_none() && var.is_none() {
            return body;
        }
    }
}

/// An upper bound on the parts of any UCS-2 filling of a template whose
/// fillings have at most `max_units` code units.
///
/// Why it holds: every part but the last ends where the next cluster (of `g`
/// units) did not fit, or where a scalar of an oversized cluster did not fit,
/// so it wastes at most `g - 1` units, that is at most 1 plus `g` when
/// `g >= 3`. Clusters are disjoint, so the sum of those `g` is at most the
/// units that can be in a cluster of 3 or more units, `big`:
/// - all units of a `Unicode` variable;
/// - the first and last character of a GSM-7 variable (GSM-7 characters
///   alone form clusters of at most 2 units, CR LF; only a neighbour from
///   the literal text can join them);
/// - every multi-scalar cluster of the literal pieces;
/// - the two clusters at each edge of a literal piece that a neighbour may
///   join (UAX #29 GB9-GB13 only look that far): every piece's edges when a
///   `Unicode` variable may hold anything, otherwise only the edges where
///   the piece's first cluster can attach to what precedes it or its last
///   cluster to what follows, and the facing edge of the nearest piece.
///
/// With `n` parts of 67 units,
/// `max_units >= (n - 1) * 67 - ((n - 1) + big) + 1`, so
/// `n <= (max_units - 1 + big) / 66 + 1`.
pub fn ucs2_segment_bound(
    literal: &[&str],
    variables: &[VariableBound],
    max_units: usize,
) -> usize {
    if max_units == 0 {
        return 0;
    }
    if max_units <= UCS2_SINGLE_UNITS {
        return 1;
    }
    let any_unicode = variables
        .iter()
        .any(|v| v.charset == VariableCharset::Unicode && v.max_len > 0);
    let variable_big: usize = variables
        .iter()
        .map(|v| match v.charset {
            VariableCharset::Unicode => v.max_len.saturating_mul(2),
            VariableCharset::Gsm7Basic | VariableCharset::Gsm7Extended => v.max_len.min(2),
        })
        .sum();
    let pieces: Vec<Edges> = literal
        .iter()
        .filter(|piece| !piece.is_empty())
        .map(|piece| Edges::of(piece))
        .collect();
    let mut literal_big: usize = pieces.iter().map(|e| e.multi_scalar).sum();
    for (k, edges) in pieces.iter().enumerate() {
        if any_unicode {
            literal_big += edges.head + edges.tail;
            continue;
        }
        if edges.joins_left {
            literal_big += edges.head;
            literal_big += k
                .checked_sub(1)
                .and_then(|p| pieces.get(p))
                .map_or(0, |prev| prev.tail);
        }
        if edges.joins_right {
            literal_big += edges.tail;
            literal_big += pieces.get(k + 1).map_or(0, |next| next.head);
        }
    }
    let big = variable_big.saturating_add(literal_big);
    max_units.saturating_sub(1).saturating_add(big) / (UCS2_PART_UNITS - 1) + 1
}

/// What a literal piece's edges can do, for [`ucs2_segment_bound`].
struct Edges {
    /// UTF-16 units of the first two clusters.
    head: usize,
    /// UTF-16 units of the last two clusters.
    tail: usize,
    /// UTF-16 units of all clusters of more than one scalar.
    multi_scalar: usize,
    /// The first cluster can join something before it.
    joins_left: bool,
    /// The last cluster can join something after it.
    joins_right: bool,
}

impl Edges {
    fn of(piece: &str) -> Self {
        // Probes for each way UAX #29 joins across a boundary: a letter (for
        // Extend, SpacingMark, Prepend), a regional indicator, Hangul jamo
        // L / V / T, an emoji and an emoji followed by ZWJ.
        const BEFORE: [&str; 4] = ["a", "\u{1F1FA}", "\u{1100}", "\u{1F600}\u{200D}"];
        const AFTER: [&str; 5] = ["a", "\u{1F1FA}", "\u{1161}", "\u{11A8}", "\u{1F600}"];
        let single = |s: String| s.graphemes(true).nth(1).is_none();
        let clusters: Vec<&str> = piece.graphemes(true).collect();
        let units = |c: &&str| str_units(c, Encoding::Ucs2);
        let head = clusters.iter().take(2).map(units).sum();
        let tail = clusters.iter().rev().take(2).map(units).sum();
        let multi_scalar = clusters
            .iter()
            .filter(|c| c.chars().nth(1).is_some())
            .map(units)
            .sum();
        let first = clusters.first().copied().unwrap_or_default();
        let last = clusters.last().copied().unwrap_or_default();
        Self {
            head,
            tail,
            multi_scalar,
            joins_left: BEFORE.iter().any(|p| single(format!("{p}{first}"))),
            joins_right: AFTER.iter().any(|p| single(format!("{last}{p}"))),
        }
    }
}
