use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

/// Polkit stand-in: a decision per caller, a delay, and a count of checks asked.
struct Fake {
    decisions: Mutex<HashMap<String, Decision>>,
    delay: Duration,
    asked: AtomicUsize,
    interactive_asked: AtomicUsize,
}

impl Fake {
    fn new(delay_ms: u64, decisions: &[(&str, Decision)]) -> Arc<Fake> {
        Arc::new(Fake {
            decisions: Mutex::new(
                decisions
                    .iter()
                    .map(|(n, d)| ((*n).to_owned(), *d))
                    .collect(),
            ),
            delay: Duration::from_millis(delay_ms),
            asked: AtomicUsize::new(0),
            interactive_asked: AtomicUsize::new(0),
        })
    }

    fn set(&self, caller: &str, d: Decision) {
        self.decisions
            .lock()
            .expect("lock")
            .insert(caller.to_owned(), d);
    }
}

impl Authorizer for Fake {
    fn check<'a>(
        &'a self,
        caller: &'a str,
        _action: &'static str,
        interactive: bool,
    ) -> Pin<Box<dyn Future<Output = Result<Decision, CheckError>> + Send + 'a>> {
        Box::pin(async move {
            self.asked.fetch_add(1, Ordering::SeqCst);
            if interactive {
                self.interactive_asked.fetch_add(1, Ordering::SeqCst);
            }
            tokio::time::sleep(self.delay).await;
            Ok(*self
                .decisions
                .lock()
                .expect("lock")
                .get(caller)
                .unwrap_or(&Decision::No))
        })
    }
}

/// uid = the number after the dot of the fake name (":1.1000" → 1000).
struct Uids;

impl UidLookup for Uids {
    fn uid<'a>(
        &'a self,
        caller: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<u32, String>> + Send + 'a>> {
        Box::pin(async move {
            caller
                .rsplit('.')
                .next()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| "unknown".to_owned())
        })
    }
}

fn gate(fake: &Arc<Fake>) -> Arc<Gate> {
    Arc::new(Gate::new(fake.clone(), Arc::new(Uids)))
}

#[tokio::test]
async fn root_needs_no_polkit_and_a_yes_is_cached() {
    let fake = Fake::new(0, &[(":1.1000", Decision::Yes)]);
    let g = gate(&fake);
    assert!(matches!(
        g.authorize(":1.0", Action::Inspect, false, false).await,
        Ok(Granted { uid: 0 })
    ));
    assert_eq!(fake.asked.load(Ordering::SeqCst), 0);
    for _ in 0..5 {
        assert!(
            g.authorize(":1.1000", Action::Monitor, false, false)
                .await
                .is_ok()
        );
    }
    assert_eq!(
        fake.asked.load(Ordering::SeqCst),
        1,
        "one check, then the cache"
    );
    // Another action is its own question.
    assert!(
        g.authorize(":1.1000", Action::Inspect, false, false)
            .await
            .is_ok()
    );
    assert_eq!(fake.asked.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_change_in_polkit_drops_the_cached_yes() {
    let fake = Fake::new(0, &[(":1.1000", Decision::Yes)]);
    let g = gate(&fake);
    assert!(
        g.authorize(":1.1000", Action::Monitor, false, false)
            .await
            .is_ok()
    );
    fake.set(":1.1000", Decision::No);
    assert!(
        g.authorize(":1.1000", Action::Monitor, false, false)
            .await
            .is_ok(),
        "cached"
    );
    g.invalidate();
    let denied = g.authorize(":1.1000", Action::Monitor, false, false).await;
    assert!(
        matches!(denied, Err(HelperError::NotAuthorized(_))),
        "{denied:?}"
    );
}

#[tokio::test]
async fn concurrent_calls_of_one_connection_share_one_check() {
    let fake = Fake::new(50, &[]);
    let g = gate(&fake);
    let calls: Vec<_> = (0..128)
        .map(|_| {
            let g = g.clone();
            tokio::spawn(async move { g.authorize(":1.1001", Action::Monitor, false, false).await })
        })
        .collect();
    let mut refused = 0;
    for c in calls {
        match c.await.expect("task") {
            Err(HelperError::NotAuthorized(_)) => refused += 1,
            Err(HelperError::Unavailable(_)) => {} // rate limit after the burst
            other => panic!("{other:?}"),
        }
    }
    assert!(refused >= 1);
    assert_eq!(
        fake.asked.load(Ordering::SeqCst),
        1,
        "one polkit check for 128 calls"
    );
}

#[tokio::test]
async fn a_refusal_is_remembered_briefly_but_interaction_asks_again() {
    let fake = Fake::new(0, &[]);
    let g = gate(&fake);
    for _ in 0..10 {
        let r = g.authorize(":1.1002", Action::Monitor, false, false).await;
        assert!(matches!(r, Err(HelperError::NotAuthorized(_))));
    }
    assert_eq!(fake.asked.load(Ordering::SeqCst), 1);
    let _ = g.authorize(":1.1002", Action::Monitor, true, false).await;
    assert_eq!(fake.interactive_asked.load(Ordering::SeqCst), 1);
    // After an interactive refusal, neither kind of call asks again for a while.
    let _ = g.authorize(":1.1002", Action::Monitor, true, false).await;
    let _ = g.authorize(":1.1002", Action::Monitor, false, false).await;
    assert_eq!(fake.asked.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn one_users_checks_queue_and_never_hold_up_another_user() {
    // One user on 40 connections at once: 4 checks at a time, the rest queue (none refused
    // for being many); a granted user on its own connection is answered at once.
    let fake = Fake::new(50, &[(":2.1100", Decision::Yes)]);
    let g = gate(&fake);
    let flood: Vec<_> = (0..40)
        .map(|i| {
            let g = g.clone();
            tokio::spawn(async move {
                g.authorize(&format!(":{i}.1003"), Action::Monitor, false, false)
                    .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(10)).await;
    let asked = Instant::now();
    let granted = g.authorize(":2.1100", Action::Monitor, false, false).await;
    assert!(matches!(granted, Ok(Granted { uid: 1100 })), "{granted:?}");
    assert!(
        asked.elapsed() < Duration::from_millis(200),
        "{:?}",
        asked.elapsed()
    );
    for f in flood {
        let r = f.await.expect("task");
        assert!(matches!(r, Err(HelperError::NotAuthorized(_))), "{r:?}");
    }
    assert_eq!(fake.asked.load(Ordering::SeqCst), 41);
}

#[tokio::test]
async fn overload_is_unavailable_never_a_refusal() {
    // More checks of one user than may run and wait: the excess is told to retry.
    let fake = Fake::new(300, &[]);
    let g = gate(&fake);
    let n = MAX_CHECKS_PER_UID + MAX_WAITING_PER_UID + 20;
    let flood: Vec<_> = (0..n)
        .map(|i| {
            let g = g.clone();
            tokio::spawn(async move {
                g.authorize(&format!(":{i}.1005"), Action::Monitor, false, false)
                    .await
            })
        })
        .collect();
    let (mut busy, mut refused) = (0, 0);
    for f in flood {
        match f.await.expect("task") {
            Err(HelperError::Unavailable(m)) => {
                assert!(m.contains("busy"), "{m}");
                busy += 1;
            }
            Err(HelperError::NotAuthorized(_)) => refused += 1,
            other => panic!("{other:?}"),
        }
    }
    assert!(busy >= 20, "busy {busy}, refused {refused}");
    assert!(
        refused >= MAX_CHECKS_PER_UID,
        "busy {busy}, refused {refused}"
    );
    assert_eq!(g.lock().per_uid.len(), 0, "no slots kept for an idle uid");
}

#[tokio::test]
async fn a_fast_client_is_rate_limited() {
    let fake = Fake::new(0, &[(":1.1004", Decision::Yes)]);
    let g = gate(&fake);
    let mut limited = 0;
    for _ in 0..(CALL_BURST as usize + 20) {
        if let Err(HelperError::Unavailable(_)) =
            g.authorize(":1.1004", Action::Monitor, false, false).await
        {
            limited += 1;
        }
    }
    assert!(limited >= 15, "{limited}");
    g.forget(":1.1004");
    assert_eq!(g.tracked(), 0);
}
