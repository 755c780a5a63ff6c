//! The EHR's formats, read into the episodes' events: FHIR R4
//! Appointments and subscription notifications ([`fhir`]), HL7 v2.5 SIU
//! messages ([`hl7`]) and the normalized JSON event ([`normalized`]);
//! patients' demographics from FHIR `Patient` and HL7 PID ([`patient`]).

pub mod fhir;
pub mod hl7;
pub mod normalized;
pub mod patient;

use sha2::{Digest, Sha256};

pub(crate) use optline_ports::json_reason;

/// A short stable fingerprint of a message's content, for its dedupe
/// marker.
pub(crate) fn identity(content: &str) -> String {
    hex::encode(Sha256::digest(content.as_bytes()))
        .chars()
        .take(32)
        .collect()
}
