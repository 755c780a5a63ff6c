//! The functions' IAM roles, enforced on the SDK clients the harness gives
//! each function: a call that the function's role in `infra/template.yaml`
//! does not allow fails the test at once, as AccessDenied would fail the
//! function in the cloud (the emulator itself checks no permissions).
//!
//! The allowances come from the template itself, transformed by SAM
//! (`python3 infra/local-stack.py policies`): the inline policies of each
//! function's role, with resources named as the template names them
//! (`OptlineTable`, `OptlineTable/index/due`, `*`). A call needs:
//! - DynamoDB: `dynamodb:<Operation>` on `OptlineTable` (`Query` of an
//!   index: on `OptlineTable/index/<name>`); a `TransactWriteItems` needs
//!   each of its items' own actions (`PutItem`, `UpdateItem`, `DeleteItem`,
//!   `ConditionCheckItem`), as IAM evaluates them;
//! - SQS: `sqs:<Operation>`, a batch operation its single one
//!   (`SendMessageBatch` needs `sqs:SendMessage`);
//! - SNS and EventBridge: `sns:<Operation>`, `events:<Operation>`.
//!
//! Queue, topic and bus resources are not told apart (any resource of the
//! action will do); the table's and its index's are.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use aws_sdk_dynamodb::config::interceptors::BeforeSerializationInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;

/// A function's allowances: (action, resource) pairs.
type Allowances = Vec<(String, String)>;

/// Every function's allowances, read once per test process.
fn policies() -> &'static HashMap<String, Allowances> {
    static POLICIES: OnceLock<HashMap<String, Allowances>> = OnceLock::new();
    POLICIES.get_or_init(|| {
        let out = std::process::Command::new("python3")
            .arg(crate::repo_root().join("infra/local-stack.py"))
            .arg("policies")
            .output()
            .expect("python3 runs infra/local-stack.py policies");
        assert!(
            out.status.success(),
            "reading the template's policies failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("policies parse")
    })
}

/// The role of one function of the template, as an SDK interceptor.
#[derive(Debug, Clone)]
pub struct Role {
    function: &'static str,
    allowed: Arc<Allowances>,
}

impl Role {
    /// The role of `function` (its logical id in the template, e.g.
    /// `DispatchFunction`).
    pub fn of(function: &'static str) -> Self {
        let allowed = policies()
            .get(function)
            .unwrap_or_else(|| panic!("the template has no function {function}"))
            .clone();
        Self {
            function,
            allowed: Arc::new(allowed),
        }
    }

    fn allows(&self, action: &str, resource: Option<&str>) -> bool {
        self.allowed.iter().any(|(a, r)| {
            let action_ok = a == action
                || a.strip_suffix('*')
                    .is_some_and(|prefix| action.starts_with(prefix));
            action_ok && resource.is_none_or(|want| r == want || r == "*")
        })
    }

    /// What one call needs: (action, resource; `None` for any).
    fn needs(
        &self,
        service: &str,
        operation: &str,
        context: &BeforeSerializationInterceptorContextRef<'_>,
    ) -> Vec<(String, Option<String>)> {
        use aws_sdk_dynamodb::operation::query::QueryInput;
        use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsInput;
        const TABLE: &str = "OptlineTable";
        match service {
            "DynamoDB" => {
                if let Some(query) = context.input().downcast_ref::<QueryInput>() {
                    let resource = match query.index_name() {
                        Some(index) => format!("{TABLE}/index/{index}"),
                        None => TABLE.to_owned(),
                    };
                    return vec![("dynamodb:Query".to_owned(), Some(resource))];
                }
                if let Some(tx) = context.input().downcast_ref::<TransactWriteItemsInput>() {
                    return tx
                        .transact_items()
                        .iter()
                        .map(|item| {
                            let action = if item.put().is_some() {
                                "dynamodb:PutItem"
                            } else if item.update().is_some() {
                                "dynamodb:UpdateItem"
                            } else if item.delete().is_some() {
                                "dynamodb:DeleteItem"
                            } else {
                                "dynamodb:ConditionCheckItem"
                            };
                            (action.to_owned(), Some(TABLE.to_owned()))
                        })
                        .collect();
                }
                vec![(format!("dynamodb:{operation}"), Some(TABLE.to_owned()))]
            }
            "SQS" => {
                let single = operation.strip_suffix("Batch").unwrap_or(operation);
                vec![(format!("sqs:{single}"), None)]
            }
            "SNS" => vec![(format!("sns:{operation}"), None)],
            "EventBridge" => vec![(format!("events:{operation}"), None)],
            "KMS" => vec![(format!("kms:{operation}"), None)],
            "Secrets Manager" | "SecretsManager" => {
                vec![(format!("secretsmanager:{operation}"), None)]
            }
            "S3" => {
                let action = match operation {
                    "ListObjectsV2" => "ListBucket",
                    other => other,
                };
                vec![(format!("s3:{action}"), None)]
            }
            // STS GetCallerIdentity needs no permission.
            _ => Vec::new(),
        }
    }
}

impl Intercept for Role {
    fn name(&self) -> &'static str {
        "Role"
    }

    #[allow(
        clippy::panic,
        reason = "a call the role does not allow fails the test loudly, wherever it is made"
    )]
    fn read_before_serialization(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(metadata) = cfg.load::<Metadata>() else {
            panic!("an SDK call without operation metadata: the role cannot be checked");
        };
        for (action, resource) in self.needs(metadata.service(), metadata.name(), context) {
            if !self.allows(&action, resource.as_deref()) {
                panic!(
                    "AccessDenied: {} may not call {action} on {} (its role in infra/template.yaml)",
                    self.function,
                    resource.as_deref().unwrap_or("any resource"),
                );
            }
        }
        Ok(())
    }
}
