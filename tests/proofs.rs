//! Whole-system tests of money on proof (docs/ARCHITECTURE.md, "Trust"): a signature says who
//! wrote a message, not that its transfer committed. bank2 credits only what bank1's signed
//! answer proves `COMMITTED`, bank1 refunds only what bank2's signed answer proves `REJECTED`,
//! and whatever answers at a peer URL moves nothing unless the peer bank signed it. The peer
//! may be reached over TLS. Real broker, real databases; every test ends with the
//! conservation check.
use crate::helpers;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::routing::{get, post};
use axum::{Json, Router};
use common::domain::ids::{AccountNo, TxNo};
use common::domain::message::{Body, RefundNotice, TransferMessage, MESSAGE_VERSION, REFUND_TAG};
use common::domain::money::Amount;
use common::domain::signing::{Signer, SIGNATURE_PROPERTY};
use helpers::{poll_until, Opts, TestStack};
use serde_json::{json, Value};

const DELIVERY: Duration = Duration::from_secs(60);

/// The quarantine row of `tx_no` with `code`, once there.
async fn quarantined_as(app: &TestStack, bank1: bool, tx_no: &str, code: &str) -> Value {
    poll_until(&format!("{tx_no} quarantined as {code}"), DELIVERY, || async {
        let q = if bank1 { app.quarantine1().await } else { app.quarantine2().await };
        q.into_iter().find(|i| i["tx_no"] == tx_no && i["code"] == code)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_signature_of_rolled_back_transfer_never_credited() {
    let app = TestStack::start().await;
    // 1. bank1 refuses a transfer inside its local transaction: ROLLED_BACK, half message
    //    rolled back.
    app.put_faults(&app.bank1_url, json!({"local_tx_fail_at_least": "300.00"})).await;
    let refused = app.transfer("300.00").await;
    assert_eq!(refused["status"], "ROLLED_BACK", "{refused}");
    let tx = refused["tx_no"].as_str().unwrap().to_owned();
    app.put_faults(&app.bank1_url, json!({"local_tx_fail_at_least": null})).await;

    // 2. Any client of the broker reads the half message back by key, body and signature.
    let half = app.half_messages(&tx).await;
    let body = half[0].body().map(|b| b.to_vec()).unwrap();
    let signature = common::infra::mq::property(&half[0], SIGNATURE_PROPERTY).expect("bank1 signed it");
    assert!(TransferMessage::parse(&body).unwrap().tx_no.as_str() == tx);

    // 3. …and republishes it, exactly, as a plain message on topic_txmsg.
    let topic = common::infra::mq::DEFAULT_TOPIC;
    app.publish_on(topic, common::domain::message::TRANSFER_TAG, &[(Some(&tx), body, Some(signature))]).await;

    // 4. bank2 asks bank1, which says ROLLED_BACK: quarantined as not_committed, never credited.
    let q = quarantined_as(&app, false, &tx, "not_committed").await;
    assert!(q["reason"].as_str().unwrap().contains("ROLLED_BACK"), "{q}");
    assert_eq!(app.credit(&tx).await["outcome"], "PENDING");
    poll_until("not_committed counted", DELIVERY, || async {
        (app.bank2_metric("bank2_quarantined_total{reason=\"not_committed\"}").await == 1).then_some(())
    })
    .await;
    assert_eq!(app.balance1("1").await, "1000.00");
    assert_eq!(app.balance2("2").await, "0.00", "nothing minted");

    // The consumer goes on: a real transfer is credited.
    let ok = app.transfer("10.00").await;
    app.wait_credited(ok["tx_no"].as_str().unwrap(), DELIVERY).await;
    app.assert_conserved(0).await;
    app.shutdown().await;
}

fn notice(tx_no: &str, amount: &str, rejected_at_ms: i64) -> Vec<u8> {
    RefundNotice {
        version: MESSAGE_VERSION,
        notice_id: TxNo::new_random().to_string(),
        tx_no: TxNo::parse(tx_no).unwrap(),
        from_account: AccountNo::parse("1").unwrap(),
        to_account: AccountNo::parse("2").unwrap(),
        amount: Amount::parse(amount).unwrap(),
        reason: "replayed".into(),
        rejected_at_ms,
    }
    .to_json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_refund_notice_never_refunds() {
    let app = TestStack::start().await;
    let credited = app.transfer("40.00").await;
    let tx = credited["tx_no"].as_str().unwrap().to_owned();
    app.wait_credited(&tx, DELIVERY).await;
    // A refund notice signed with bank2's own key whose rejection never committed (bank2
    // signs a notice before its local transaction runs): one for the transfer bank2 credited,
    // one for a transfer bank2 never saw, written long ago.
    let never = TxNo::new_random().to_string();
    let long_ago = common::now_ms() - 3_600_000;
    let signer = &app.secrets.bank2_signer;
    let signed = |body: Vec<u8>| {
        let s = signer.sign(&body);
        (body, Some(s))
    };
    let (b1, s1) = signed(notice(&tx, "40.00", common::now_ms()));
    let (b2, s2) = signed(notice(&never, "40.00", long_ago));
    let topic = common::infra::mq::DEFAULT_REFUND_TOPIC;
    app.publish_on(topic, REFUND_TAG, &[(Some(&tx), b1, s1), (Some(&never), b2, s2)]).await;

    let q = quarantined_as(&app, true, &tx, "not_rejected").await;
    assert!(q["reason"].as_str().unwrap().contains("CREDITED"), "{q}");
    quarantined_as(&app, true, &never, "not_rejected").await;
    let (_, t) = app.bank1_transfer(&tx).await;
    assert_eq!(t["status"], "COMMITTED", "not refunded: {t}");
    assert_eq!(app.balance1("1").await, "960.00", "the sender got nothing back");
    assert_eq!(app.balance2("2").await, "40.00");
    app.assert_conserved(0).await;
    app.shutdown().await;
}

/// A fake peer bank at a URL of its own: its feed and query interface answer well-formed
/// entries, for `tx_no`, unsigned or signed with a stranger's key.
async fn fake_peer(tx_no: String, signer: Option<Signer>) -> SocketAddr {
    let entry = json!({"tx_no": tx_no, "status": "COMMITTED", "from_account": "1", "to_account": "2",
        "amount": "700.00", "created_at_ms": 1, "feed_pos": 1, "reason": "forged", "rejected_at_ms": 1,
        "message": "COMMITTED"});
    let page = Arc::new(json!({"items": [entry.clone()], "next": "1", "after": "0", "signed_at_ms": 1}));
    let signer = Arc::new(signer);
    let answer = move |body: Value| {
        let mut headers = axum::http::HeaderMap::new();
        let bytes = serde_json::to_vec(&body).unwrap();
        if let Some(s) = signer.as_ref() {
            headers.insert("bank-signature", s.sign(&bytes).parse().unwrap());
        }
        headers.insert("content-type", "application/json".parse().unwrap());
        (headers, bytes)
    };
    let (a1, a2) = (answer.clone(), answer);
    let status = {
        let entry = entry.clone();
        move |Json(q): Json<Value>| {
            let a = a2.clone();
            let mut e = entry.clone();
            e["status"] = json!("REJECTED");
            async move { a(json!({"bank": "bank1", "nonce": q["nonce"], "signed_at_ms": 1, "entries": [e]})) }
        }
    };
    let feed = move || {
        let (a, p) = (a1.clone(), Arc::clone(&page));
        async move { a((*p).clone()) }
    };
    let app = Router::new()
        .route("/api/transfers", get(feed.clone()))
        .route("/api/rejections", get(feed))
        .route("/api/transfers/proofs", post(status.clone()))
        .route("/api/rejections/proofs", post(status));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_feed_answer_moves_nothing() {
    for stranger in [None, Some(Signer::generate())] {
        let forged = TxNo::new_random().to_string();
        let fake = fake_peer(forged.clone(), stranger).await;
        let app = TestStack::start_with(Opts {
            bank2_bank1: Some((format!("http://{fake}"), None)),
            bank1_bank2_url: Some(format!("http://{fake}")),
            ..Opts::default()
        })
        .await;
        // A real transfer: bank2 cannot prove it through the fake, so it waits, uncredited.
        let real = app.transfer("25.00").await;
        let real_tx = real["tx_no"].as_str().unwrap().to_owned();
        let attempts = app.wait_attempts(&real_tx, 1, DELIVERY).await;
        assert!(attempts[0]["error"].as_str().unwrap().contains("not proven"), "{attempts:?}");
        // Both reconcilers read the fake feeds: every entry refused, nothing applied.
        for bank in [&app.bank1_url, &app.bank2_url] {
            let r = app.admin(reqwest::Method::POST, bank, "/admin/reconcile?grace=0s").send().await.unwrap();
            assert!(!r.status().is_success(), "a forged feed fails the run: {}", r.status());
        }
        assert_eq!(app.credit(&forged).await["outcome"], "PENDING");
        assert_eq!(app.credit(&real_tx).await["outcome"], "PENDING");
        let (_, t) = app.bank1_transfer(&real_tx).await;
        assert_eq!(t["status"], "COMMITTED", "not refunded on a forged rejection: {t}");
        assert!(app.metric(&app.bank2_url, "peer_answers_refused_total{peer=\"bank1\"}").await >= 2);
        assert!(app.metric(&app.bank1_url, "peer_answers_refused_total{peer=\"bank2\"}").await >= 1);
        assert_eq!(app.balance1("1").await, "975.00");
        assert_eq!(app.balance2("2").await, "0.00", "nothing minted");
        app.assert_conserved(2500).await;
        app.shutdown().await;
    }
}

/// A TLS front for bank1 (rustls, a certificate of a CA made here): what a user puts before a
/// bank that serves plain HTTP. Forwards each connection to the address set in `backend`.
async fn tls_front(backend: Arc<OnceLock<String>>) -> (SocketAddr, std::path::PathBuf, tempfile::TempDir) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    use tokio_rustls::rustls;
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &Issuer::new(ca_params, ca_key))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, backend) = (acceptor.clone(), Arc::clone(&backend));
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                let Some(to) = backend.get() else { return };
                let Ok(mut plain) = tokio::net::TcpStream::connect(to.as_str()).await else { return };
                tokio::io::copy_bidirectional(&mut tls, &mut plain).await.ok();
            });
        }
    });
    (addr, ca_file, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_over_tls() {
    let backend = Arc::new(OnceLock::new());
    let (front, ca_file, _dir) = tls_front(Arc::clone(&backend)).await;
    let app = TestStack::start_with(Opts {
        bank2_bank1: Some((format!("https://localhost:{}", front.port()), Some(ca_file))),
        ..Opts::default()
    })
    .await;
    backend.set(app.bank1_url.trim_start_matches("http://").to_owned()).unwrap();
    // The consumer proves over TLS…
    let ok = app.transfer("12.00").await;
    app.wait_credited(ok["tx_no"].as_str().unwrap(), DELIVERY).await;
    // …and the reconciler reads bank1's feed over TLS: a lost message is credited.
    app.put_faults(&app.bank1_url, json!({"lose_message_at_least": "50.00"})).await;
    let lost = app.transfer("60.00").await;
    let lost_tx = lost["tx_no"].as_str().unwrap().to_owned();
    assert_eq!(lost["status"], "COMMITTED");
    poll_until("the reconciler reaches the lost transfer over TLS", DELIVERY, || async {
        let report = app.reconcile().await;
        report["credited"].as_array().unwrap().iter().any(|t| t == lost_tx.as_str()).then_some(())
    })
    .await;
    assert_eq!(app.credit(&lost_tx).await["source"], "RECONCILE");
    assert_eq!(app.balance2("2").await, "72.00");
    assert_eq!(app.metric(&app.bank2_url, "peer_answers_refused_total{peer=\"bank1\"}").await, 0);
    app.assert_conserved(0).await;
    app.shutdown().await;
}
