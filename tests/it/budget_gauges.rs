//! Budgets as metrics (issue 29 item 3), in real scrapes of the binary on the memory backend:
//! `switchyard_budget_{limit,spent,reserved}{team,key,period,unit}` for every configured
//! budget from the first scrape, moving after a priced request, gone after a reload that
//! removes the budget; and the `x-switchyard-budget-remaining-*` headers of the answer.
//! (Redis: `tests/limits.rs`, where another instance's spending shows.)

use crate::support;

use serde_json::json;
use support::*;

/// USD per million tokens: high, so that one small request costs a visible amount.
const PRICE: f64 = 1000.0;

fn config(key_budget: &str) -> String {
    ConfigBody::new()
        .usage_log()
        .mock_provider("builtin")
        .model_with(
            "m",
            &format!("input_usd_per_mtok = {PRICE}\noutput_usd_per_mtok = {PRICE}"),
            &[("builtin", "mock-1")],
        )
        .team("t", "usd_per_month = 10.0\ntokens_per_day = 100000")
        .key("k", "t", DEMO_SECRET, key_budget)
        .build()
}

fn value(text: &str, name: &str, key: &str, period: &str, unit: &str) -> Option<f64> {
    metric_value(
        text,
        name,
        &[
            ("team", "t"),
            ("key", key),
            ("period", period),
            ("unit", unit),
        ],
    )
}

#[tokio::test]
async fn the_gauges_are_in_the_first_scrape_move_with_spending_and_leave_with_their_budget() {
    let gw = Gateway::start(&config("usd_per_month = 5.0")).await;

    // Before any request: every budget, nothing spent or reserved.
    let text = gw.metrics().await;
    assert_eq!(
        value(&text, "switchyard_budget_limit", "", "month", "usd"),
        Some(10.0)
    );
    assert_eq!(
        value(&text, "switchyard_budget_limit", "", "day", "tokens"),
        Some(100000.0)
    );
    assert_eq!(
        value(&text, "switchyard_budget_limit", "k", "month", "usd"),
        Some(5.0)
    );
    assert_eq!(
        value(&text, "switchyard_budget_limit", "k", "day", "tokens"),
        None,
        "no such budget"
    );
    for (key, period, unit) in [
        ("", "month", "usd"),
        ("", "day", "tokens"),
        ("k", "month", "usd"),
    ] {
        assert_eq!(
            value(&text, "switchyard_budget_spent", key, period, unit),
            Some(0.0)
        );
        assert_eq!(
            value(&text, "switchyard_budget_reserved", key, period, unit),
            Some(0.0)
        );
    }

    // A priced request: the answer tells what is left of the tightest money budget (the
    // key's $5, less this request's reservation) and of the token budget.
    let resp = gw
        .chat(
            DEMO_SECRET,
            &json!({"model": "m", "max_tokens": 20,
                                   "messages": [{"role": "user", "content": "hello there"}]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let header = |name: &str| -> f64 {
        resp.headers()
            .get(name)
            .unwrap_or_else(|| panic!("{name} is on the answer"))
            .to_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    let usd_left = header("x-switchyard-budget-remaining-usd");
    let tokens_left = header("x-switchyard-budget-remaining-tokens");
    assert!(
        usd_left < 5.0 && usd_left > 4.9,
        "the key's $5 less a reservation: {usd_left}"
    );
    assert!(
        tokens_left < 100000.0 && tokens_left > 99000.0,
        "{tokens_left}"
    );

    let line = gw.wait_usage_lines(1).await.remove(0);
    let tokens =
        line["prompt_tokens"].as_f64().unwrap() + line["completion_tokens"].as_f64().unwrap();
    let cost = line["cost_usd"].as_f64().unwrap();
    assert!(cost > 0.0, "{line}");
    let spent = gw
        .metric_until(
            "switchyard_budget_spent",
            &[
                ("team", "t"),
                ("key", "k"),
                ("period", "month"),
                ("unit", "usd"),
            ],
            cost,
        )
        .await;
    assert!(
        (spent - cost).abs() < 1e-9,
        "key spent {spent}, the log says {cost}"
    );
    let text = gw.metrics().await;
    let team_spent = value(&text, "switchyard_budget_spent", "", "month", "usd").unwrap();
    assert!((team_spent - cost).abs() < 1e-9, "{team_spent} vs {cost}");
    assert_eq!(
        value(&text, "switchyard_budget_spent", "", "day", "tokens"),
        Some(tokens)
    );
    assert_eq!(
        value(&text, "switchyard_budget_reserved", "k", "month", "usd"),
        Some(0.0),
        "settled"
    );

    // A reload that removes the key's budget: its series go, the team's stay.
    gw.write_config(&config(""));
    let mut gone = false;
    for _ in 0..100 {
        let text = gw.metrics().await;
        if value(&text, "switchyard_budget_limit", "k", "month", "usd").is_none() {
            assert_eq!(
                value(&text, "switchyard_budget_limit", "", "month", "usd"),
                Some(10.0)
            );
            assert!(value(&text, "switchyard_budget_spent", "k", "month", "usd").is_none());
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        gone,
        "the key's budget series stayed after the reload\n{}",
        gw.logs()
    );
}
