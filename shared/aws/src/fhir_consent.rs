//! Consent changes written back to the EHR as FHIR R4 `Consent` resources,
//! where a deployment names the source whose FHIR server receives them
//! (`CONSENT_WRITEBACK_SOURCE`, with its SMART Backend Services client in
//! the EHR sources secret). One resource per patient the change reaches,
//! created conditionally on its identifier (`urn:optline:consent-event`),
//! so a repeat creates nothing.

use std::sync::Arc;

use async_trait::async_trait;
use optline_ports::{EventPublisher, OutboxEvent, PortError, CONSENT_DETAIL_TYPE};

use crate::smart::SmartFhirReader;

/// The identifier system of the Consent resources optline writes.
pub const CONSENT_IDENTIFIER_SYSTEM: &str = "urn:optline:consent-event";

/// The FHIR R4 `Consent` for one patient of a `optline.consent.changed`
/// event's detail: a grant is a permit under `OPTIN`, a revocation a deny
/// under `OPTOUT`, for text messages, in the categories it names.
pub fn consent_resource(detail: &serde_json::Value, patient: &str) -> Option<serde_json::Value> {
    let event_id = detail.get("event_id")?.as_str()?;
    let at = detail.get("at")?.as_str()?;
    let grant = detail.get("action")?.as_str()? == "grant";
    let categories: Vec<serde_json::Value> = detail
        .get("categories")
        .and_then(|c| c.as_array())
        .map(|list| {
            list.iter()
                .filter_map(|c| c.as_str())
                .map(|c| serde_json::json!({"text": c}))
                .collect()
        })
        .unwrap_or_default();
    let mut provision = serde_json::json!({
        "type": if grant { "permit" } else { "deny" },
        "period": {"start": at},
        "action": [{"text": "text messages (SMS) from the program"}],
    });
    if !categories.is_empty() {
        if let Some(p) = provision.as_object_mut() {
            p.insert("code".to_owned(), serde_json::Value::Array(categories));
        }
    }
    Some(serde_json::json!({
        "resourceType": "Consent",
        "identifier": [{"system": CONSENT_IDENTIFIER_SYSTEM, "value": format!("{event_id}/{patient}")}],
        "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0", "display": "Patient Consent"}]}],
        "patient": {"reference": format!("Patient/{patient}")},
        "dateTime": at,
        "policyRule": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
            "code": if grant { "OPTIN" } else { "OPTOUT" },
        }]},
        "provision": provision,
    }))
}

/// Writes consent changes to the source's FHIR server ([`EventPublisher`]:
/// the outbox drain fans events out to it).
#[derive(Debug, Clone)]
pub struct FhirConsentWriter {
    /// The SMART client.
    pub fhir: Arc<SmartFhirReader>,
    /// The source whose server receives the resources.
    pub source: String,
}

#[async_trait]
impl EventPublisher for FhirConsentWriter {
    async fn publish(&self, events: &[OutboxEvent]) -> Result<Vec<String>, PortError> {
        let mut refused = Vec::new();
        for event in events
            .iter()
            .filter(|e| e.detail_type == CONSENT_DETAIL_TYPE)
        {
            let patients: Vec<String> = event
                .detail
                .get("contact_ids")
                .and_then(|c| c.as_array())
                .map(|list| {
                    list.iter()
                        .filter_map(|c| c.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            for patient in patients {
                let Some(resource) = consent_resource(&event.detail, &patient) else {
                    continue;
                };
                let condition = format!(
                    "identifier={CONSENT_IDENTIFIER_SYSTEM}|{}",
                    resource
                        .pointer("/identifier/0/value")
                        .and_then(|v| v.as_str())
                        .unwrap_or_default()
                );
                if let Err(e) = self.fhir.create(&self.source, &resource, &condition).await {
                    tracing::warn!(event = %event.id, error = %e, "consent not written to the EHR");
                    refused.push(event.id.clone());
                    break;
                }
            }
        }
        Ok(refused)
    }
}
