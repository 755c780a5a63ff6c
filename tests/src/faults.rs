//! Fault injection: an SDK interceptor that fails the Nth AWS call a
//! function makes (counted across all its clients), in one of two ways:
//!
//! - [`Fault::Before`]: the call never leaves (a request that could not be
//!   sent): nothing is applied, the caller sees an error;
//! - [`Fault::After`]: the call is applied, and its answer is lost on the
//!   way back (every attempt of it): the caller sees an error, although
//!   the write happened.
//!
//! Tests run a trigger with the fault, retry it as its source would, and
//! compare the end state with a clean run's.

use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::{
    BeforeDeserializationInterceptorContextRef, BeforeSerializationInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_types::config_bag::{Storable, StoreReplace};

/// How the chosen call fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Never sent: nothing applied.
    Before,
    /// Applied, answer lost.
    After,
}

#[derive(Debug, Default)]
struct State {
    counting: bool,
    calls: Vec<String>,
    fail: Option<(usize, Fault)>,
    injected: Option<String>,
}

/// The interceptor, shared by every client of one function.
#[derive(Debug, Clone, Default)]
pub struct FaultPlan(Arc<Mutex<State>>);

/// Marks an operation whose answer is to be lost.
#[derive(Debug, Clone)]
struct LoseAnswer;

impl Storable for LoseAnswer {
    type Storer = StoreReplace<Self>;
}

impl FaultPlan {
    /// Starts counting calls, failing the `n`th (from 1) as `fault`, or
    /// none.
    pub fn arm(&self, fail: Option<(usize, Fault)>) {
        if let Ok(mut state) = self.0.lock() {
            *state = State {
                counting: true,
                fail,
                ..State::default()
            };
        }
    }

    /// Stops counting and failing.
    pub fn disarm(&self) {
        if let Ok(mut state) = self.0.lock() {
            state.counting = false;
            state.fail = None;
        }
    }

    /// The calls made since [`FaultPlan::arm`], as `Service.Operation`.
    pub fn calls(&self) -> Vec<String> {
        self.0.lock().map(|s| s.calls.clone()).unwrap_or_default()
    }

    /// The call that was failed, if the run got that far.
    pub fn injected(&self) -> Option<String> {
        self.0.lock().ok().and_then(|s| s.injected.clone())
    }
}

impl Intercept for FaultPlan {
    fn name(&self) -> &'static str {
        "FaultPlan"
    }

    fn read_before_serialization(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let name = cfg
            .load::<Metadata>()
            .map(|m| format!("{}.{}", m.service(), m.name()))
            .unwrap_or_else(|| "unknown".to_owned());
        let Ok(mut state) = self.0.lock() else {
            return Ok(());
        };
        if !state.counting {
            return Ok(());
        }
        state.calls.push(name.clone());
        let n = state.calls.len();
        match state.fail {
            Some((at, fault)) if at == n => {
                state.injected = Some(format!("{name} ({fault:?})"));
                match fault {
                    Fault::Before => Err(format!("injected: {name} was never sent").into()),
                    Fault::After => {
                        cfg.interceptor_state().store_put(LoseAnswer);
                        Ok(())
                    }
                }
            }
            _ => Ok(()),
        }
    }

    fn read_after_transmit(
        &self,
        _context: &BeforeDeserializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if cfg.load::<LoseAnswer>().is_some() {
            return Err("injected: the answer was lost on the way back".into());
        }
        Ok(())
    }
}
