//! Contacts: created once, read masked.

use chrono::{DateTime, Utc};
use optline_policy::phone::E164;
use optline_policy::UsState;
use optline_ports::{Commit, Committed, Contact, ContactId, Write};
use serde::Deserialize;

use crate::{Consent, ConsentError};

/// `POST /contacts`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewContact {
    /// Contact id (e.g. the EHR patient id).
    pub id: String,
    /// Phone in any common written form.
    pub phone: String,
    /// Program; the default program when absent.
    #[serde(default)]
    pub program: Option<String>,
    /// IANA time zone.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// Address state (two letters).
    #[serde(default)]
    pub address_state: Option<String>,
    /// Minor flag.
    #[serde(default)]
    pub minor: bool,
    /// Date of birth (`YYYY-MM-DD`).
    #[serde(default)]
    pub date_of_birth: Option<chrono::NaiveDate>,
    /// Where the number came from: `{"source": "patient_intake" |
    /// "web_form" | "staff" | "ehr_demographics" | "carrier",
    /// "given_by_patient": bool, "evidence": "...", "at": "..."}`.
    #[serde(default)]
    pub phone_provenance: Option<optline_ports::PhoneProvenance>,
}

/// What creating a contact did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// A new contact.
    New(Contact),
    /// The same contact existed already (a retried call).
    Existing(Contact),
}

/// Creates a contact; the same request again finds it, a different one
/// with the same id is a conflict.
pub async fn create_contact(
    consent: Consent<'_>,
    input: NewContact,
    now: DateTime<Utc>,
) -> Result<Created, ConsentError> {
    let id = ContactId::parse(&input.id).map_err(|e| ConsentError::Invalid(e.to_string()))?;
    let phone = E164::parse(&input.phone).map_err(|e| ConsentError::Invalid(e.to_string()))?;
    if let Some(zone) = &input.time_zone {
        if zone.parse::<chrono_tz::Tz>().is_err() {
            return Err(ConsentError::Invalid(
                "time_zone is not an IANA time zone".to_owned(),
            ));
        }
    }
    let address_state = input
        .address_state
        .as_deref()
        .map(UsState::parse)
        .transpose()
        .map_err(|e| ConsentError::Invalid(e.to_string()))?;
    let contact = Contact {
        id,
        phone,
        program: input
            .program
            .unwrap_or_else(|| consent.default_program.to_owned()),
        time_zone: input.time_zone,
        address_state,
        minor: input.minor,
        date_of_birth: input.date_of_birth,
        phone_provenance: input.phone_provenance,
        language: None,
        identifiers: Vec::new(),
        created_at: now,
    };
    let same = |existing: &Contact| {
        Contact {
            created_at: existing.created_at,
            ..contact.clone()
        } == *existing
    };
    if let Some(existing) = consent.store.contact(&contact.id).await? {
        return if same(&existing) {
            Ok(Created::Existing(existing))
        } else {
            Err(ConsentError::Conflict(
                "a different contact with this id exists".to_owned(),
            ))
        };
    }
    let mut commit = Commit::default();
    commit.push(Write::CreateContact(contact.clone()));
    match consent.store.commit(commit).await? {
        Committed::Done(_) => Ok(Created::New(contact)),
        Committed::Duplicate(_) | Committed::Conflict(_) => {
            match consent.store.contact(&contact.id).await? {
                Some(existing) if same(&existing) => Ok(Created::Existing(existing)),
                _ => Err(ConsentError::Conflict(
                    "a different contact with this id exists".to_owned(),
                )),
            }
        }
    }
}

/// A contact by id.
pub async fn contact(consent: Consent<'_>, id: &str) -> Result<Contact, ConsentError> {
    let id = ContactId::parse(id).map_err(|e| ConsentError::Invalid(e.to_string()))?;
    consent
        .store
        .contact(&id)
        .await?
        .ok_or(ConsentError::NotFound("no such contact"))
}

/// A contact as an API shows it: the phone masked.
pub fn view(contact: &Contact) -> serde_json::Value {
    serde_json::json!({
        "id": contact.id,
        "phone": contact.phone.masked(),
        "program": contact.program,
        "time_zone": contact.time_zone,
        "address_state": contact.address_state,
        "minor": contact.minor,
        "date_of_birth": contact.date_of_birth,
        "phone_provenance": contact.phone_provenance,
        "language": contact.language,
        "identifiers": contact.identifiers.len(),
        "created_at": contact.created_at,
    })
}
