//! Readiness: named conditions that must all hold for `/readyz` to answer 200.
//!
//! Each start-up dependency (a listener bound, a sink that answered, a fresh backup) is a
//! [`Condition`] that starts not ready with a reason. Shutdown makes the agent not ready at once,
//! whatever the conditions say.
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
struct State {
    shutting_down: bool,
    // (name, Some(reason) when not ready). Few entries: a Vec keeps the order of registration.
    conditions: Vec<(String, Option<String>)>,
}

/// The agent's readiness, shared by the admin server and the agent's tasks.
#[derive(Clone, Debug, Default)]
pub struct Readiness {
    state: Arc<Mutex<State>>,
}

/// One condition of readiness, set by the task that owns it.
#[derive(Clone, Debug)]
pub struct Condition {
    readiness: Readiness,
    index: usize,
}

impl Readiness {
    /// Ready (no conditions yet).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a condition that starts not ready, with `reason` shown by `/readyz` until it holds.
    pub fn condition(&self, name: &str, reason: &str) -> Condition {
        let mut st = self.state.lock().expect("readiness lock");
        st.conditions
            .push((name.to_string(), Some(reason.to_string())));
        Condition {
            readiness: self.clone(),
            index: st.conditions.len() - 1,
        }
    }

    /// Marks the agent as shutting down: not ready from now on.
    pub fn shutting_down(&self) {
        self.state.lock().expect("readiness lock").shutting_down = true;
    }

    /// `Ok(())` when ready, else the one-line reason (the first condition that does not hold).
    pub fn check(&self) -> Result<(), String> {
        let st = self.state.lock().expect("readiness lock");
        if st.shutting_down {
            return Err("shutting down".to_string());
        }
        match st
            .conditions
            .iter()
            .find_map(|(name, reason)| reason.as_ref().map(|r| (name, r)))
        {
            Some((name, reason)) => Err(format!("{name}: {reason}")),
            None => Ok(()),
        }
    }
}

impl Condition {
    /// The condition holds.
    pub fn set_ready(&self) {
        self.set(None);
    }

    /// The condition does not hold, for this reason.
    pub fn set_not_ready(&self, reason: impl Into<String>) {
        self.set(Some(reason.into()));
    }

    fn set(&self, reason: Option<String>) {
        let mut st = self.readiness.state.lock().expect("readiness lock");
        st.conditions[self.index].1 = reason;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_and_shutdown() {
        let r = Readiness::new();
        assert!(r.check().is_ok());
        let a = r.condition("listener", "not bound yet");
        let b = r.condition("sink", "no answer yet");
        assert_eq!(r.check().unwrap_err(), "listener: not bound yet");
        a.set_ready();
        assert_eq!(r.check().unwrap_err(), "sink: no answer yet");
        b.set_ready();
        assert!(r.check().is_ok());
        b.set_not_ready("elasticsearch refused the connection");
        assert_eq!(
            r.check().unwrap_err(),
            "sink: elasticsearch refused the connection"
        );
        b.set_ready();
        r.shutting_down();
        assert_eq!(r.check().unwrap_err(), "shutting down");
    }
}
