//! The ehr-events Lambda behind API Gateway (HTTP API).

use std::sync::Arc;

use lambda_http::{service_fn, Error, Request};
use optline_config::AwsClients;
use optline_ehr_events::{handle_reloading, Deps};

#[tokio::main]
async fn main() -> Result<(), Error> {
    optline_config::init_logging();
    let clients = AwsClients::load().await;
    let config = optline_aws::load_config(&clients).await?;
    let sources_json = match optline_aws::ehr_sources_json(clients.secrets()).await? {
        Some(json) => Some(json),
        None => std::env::var("EHR_SOURCES")
            .ok()
            .filter(|j| !j.trim().is_empty()),
    };
    // Sources with a FHIR server: id-only notifications are fetched from it.
    let fhir: Option<Arc<dyn optline_ports::FhirReader>> = match sources_json.as_deref() {
        Some(json) => {
            let servers = optline_ehr_events::verify::fhir_servers(json)?;
            if servers.is_empty() {
                None
            } else {
                Some(Arc::new(optline_aws::SmartFhirReader::new(servers)?))
            }
        }
        None => None,
    };
    let deps = Deps {
        store: Arc::new(optline_aws::table_store(&clients, &config).await?),
        people: Arc::new(optline_api::Verifier::from_env().await?),
        // The sources' secrets live in Secrets Manager (the environment
        // holds only the secret's ARN); `EHR_SOURCES` is for local runs.
        sources: match sources_json.as_deref() {
            Some(json) => optline_ehr_events::verify::EhrSources::parse(json)?,
            None => optline_ehr_events::verify::EhrSources::default(),
        },
        lint: Arc::new(optline_library::lint_config(
            config.template_lint.as_deref(),
        )?),
        config: Arc::new(config),
        templates: Arc::default(),
        fhir,
    };
    // A new or rotated source works on its first request.
    let deps = &optline_api::reload::Reloadable::new(deps);
    let clients = &clients;
    lambda_http::run(service_fn(move |request: Request| async move {
        let reload = || async move {
            match optline_aws::ehr_sources_json(clients.secrets()).await {
                Ok(Some(json)) => optline_ehr_events::verify::EhrSources::parse(&json),
                Ok(None) => Err("no EHR sources secret configured".to_owned()),
                Err(e) => Err(e.to_string()),
            }
        };
        Ok::<_, Error>(handle_reloading(deps, request, chrono::Utc::now(), reload).await)
    }))
    .await
}
