"""Alert rules, bodies, DingTalk signing and the webhook client (against a real local receiver)."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import re
import socket
import urllib.parse
from decimal import Decimal

import pytest
from scrapy.settings import Settings

from shopcrawl.config import AlertConfig, ConfigError
from shopcrawl.monitor.alerts import BATCH, MARKDOWN_BYTES, content_key, escape_markdown, matches, messages
from shopcrawl.monitor.changes import Change
from shopcrawl.monitor.webhooks import WebhookError, dingtalk_sign, post_json, redact_url, signed_url
from tests.webhook_receiver import webhook_receiver

HOSTILE = "a\nb [点我](http://e.x) <img src=x onerror=alert(1)> **粗** `c`"


def config(**settings: object) -> AlertConfig:
    return AlertConfig.from_settings(Settings(settings))


def change(kind: str = "price_drop", pct: float | None = -10.0, **fields: object) -> Change:
    values: dict = {"old": "10.00", "new": "9.00", "pct": pct} if kind.startswith("price") else {}
    values |= fields
    num_iid, title = values.pop("num_iid", 1001), values.pop("title", "连衣裙")
    return Change(kind, "taobao", "demo", num_iid, title, "run-2", **values)


# --- settings -------------------------------------------------------------------------------------------


def test_alerts_are_off_by_default():
    cfg = config()
    assert (cfg.webhook, cfg.format, cfg.price_drop, cfg.price_rise, cfg.events) == (
        "",
        "generic",
        None,
        None,
        set(),
    )


def test_rules_parse():
    cfg = config(
        SHOPCRAWL_ALERT_WEBHOOK="https://hook.example/x",
        SHOPCRAWL_ALERT_FORMAT="DingTalk",
        SHOPCRAWL_ALERT_SECRET="SECabc",
        SHOPCRAWL_ALERT_PRICE_DROP="12.5%",
        SHOPCRAWL_ALERT_PRICE_RISE="0",
        SHOPCRAWL_ALERT_ON=" new, delisted ,restocked,",
    )
    assert cfg.format == "dingtalk"
    assert cfg.price_drop == Decimal("12.5") and cfg.price_rise == Decimal(0)
    assert cfg.events == {"new", "delisted", "restocked"}
    assert "SECabc" not in repr(cfg)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"SHOPCRAWL_ALERT_FORMAT": "slack"},
            "SHOPCRAWL_ALERT_FORMAT must be one of generic, dingtalk, wecom",
        ),
        ({"SHOPCRAWL_ALERT_ON": "new,price_drop"}, "SHOPCRAWL_ALERT_ON: unknown 'price_drop'"),
        ({"SHOPCRAWL_ALERT_PRICE_DROP": "ten"}, "SHOPCRAWL_ALERT_PRICE_DROP must be a percent"),
        (
            {"SHOPCRAWL_ALERT_PRICE_RISE": "-5"},
            "SHOPCRAWL_ALERT_PRICE_RISE must be a percent between 0 and 1000",
        ),
        ({"SHOPCRAWL_ALERT_PRICE_RISE": "NaN"}, "SHOPCRAWL_ALERT_PRICE_RISE must be a percent between"),
        ({"SHOPCRAWL_ALERT_SECRET": "SECabc"}, "SHOPCRAWL_ALERT_SECRET signs DingTalk robot URLs"),
    ],
)
def test_bad_rules_raise_naming_the_setting(settings, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        config(**settings)


def test_a_bad_webhook_url_is_refused_without_echoing_it():
    with pytest.raises(ConfigError, match="SHOPCRAWL_ALERT_WEBHOOK must be an http") as info:
        config(SHOPCRAWL_ALERT_WEBHOOK="oapi.dingtalk.com/robot/send?access_token=tok-123")
    assert "tok-123" not in str(info.value)


# --- rules ----------------------------------------------------------------------------------------------


def test_price_rules_take_the_threshold_inclusively():
    cfg = config(SHOPCRAWL_ALERT_PRICE_DROP="10", SHOPCRAWL_ALERT_PRICE_RISE="5")
    assert matches(change("price_drop", -10.0), cfg)
    assert not matches(change("price_drop", -9.99), cfg)
    assert matches(change("price_rise", 5.0), cfg)
    assert not matches(change("price_rise", 4.99), cfg)
    assert matches(change("price_rise", None), cfg)  # from a zero price
    assert not matches(change("new"), cfg) and not matches(change("delisted"), cfg)


def test_off_price_rules_and_event_rules():
    cfg = config(SHOPCRAWL_ALERT_ON="new,sold_out")
    assert not matches(change("price_drop", -90.0), cfg)
    assert not matches(change("price_rise", 90.0), cfg)
    assert matches(change("new"), cfg) and matches(change("sold_out", old=5, new=0), cfg)
    assert not matches(change("restocked", old=0, new=5), cfg) and not matches(change("relisted"), cfg)


def test_the_content_key_leaves_out_the_run_that_found_the_change():
    first = change()
    rerun = dataclasses.replace(first, run_id="run-3")
    assert first.key != rerun.key
    assert content_key(first, "run-1") == content_key(rerun, "run-1")
    assert content_key(first, "run-1") != content_key(change(new="8.00"), "run-1")
    assert content_key(first, "run-1") != content_key(change(sku_id=7), "run-1")
    assert content_key(first, "run-1") != content_key(first, "run-0")  # against another base: a new change


# --- bodies ---------------------------------------------------------------------------------------------


def dicts(n: int, **fields: object) -> list[dict]:
    return [change(num_iid=i, **fields).as_dict() for i in range(1, n + 1)]


def test_generic_bodies_carry_the_changes_as_objects_in_batches():
    out = list(messages("generic", "taobao", "demo", "run-2", dicts(45)))
    assert [count for count, _ in out] == [BATCH, BATCH, 5]
    body = out[2][1]
    assert set(body) == {"seller", "platform", "run_id", "changes"}
    assert (body["seller"], body["platform"], body["run_id"]) == ("demo", "taobao", "run-2")
    assert [c["num_iid"] for c in body["changes"]] == [41, 42, 43, 44, 45]
    assert body["changes"][0] == change(num_iid=41).as_dict()


@pytest.mark.parametrize("fmt", ["dingtalk", "wecom"])
def test_robot_bodies_are_markdown_within_the_size_limit(fmt):
    changes = dicts(45, title="很长的标题" * 40)
    out = list(messages(fmt, "taobao", "demo", "run-2", changes))
    assert sum(count for count, _ in out) == 45
    for count, body in out:
        assert count <= BATCH
        assert body["msgtype"] == "markdown"
        text = body["markdown"]["text" if fmt == "dingtalk" else "content"]
        assert len(text.encode()) <= MARKDOWN_BYTES[fmt]
        assert text.count("\n- ") == count
        if fmt == "dingtalk":
            assert set(body["markdown"]) == {"title", "text"} and "demo" in body["markdown"]["title"]
        else:
            assert set(body["markdown"]) == {"content"}


def test_a_hostile_title_stays_text_in_robot_markdown():
    ((_, body),) = messages("dingtalk", "taobao", "demo", "run-2", [change(title=HOSTILE).as_dict()])
    text = body["markdown"]["text"]
    line = text.splitlines()[-1]
    assert "<img" not in text and "&lt;img src=x onerror=alert\\(1\\)&gt;" in line
    assert "](" not in line.replace("\\](", "").replace("\\]\\(", "")
    assert re.search(r"(?<!\\)\[", line) is None  # every [ escaped: no link can start
    assert "**" not in line and "`" not in line.replace("\\`", "")
    assert text.count("\n") == 4 and line.endswith(
        "a b \\[点我\\]\\(http://e\\.x\\) " + "&lt;img src=x onerror=alert\\(1\\)&gt; \\*\\*粗\\*\\* \\`c\\`"
    )
    json.loads(json.dumps(body))  # a JSON object, whatever the title holds


def test_escape_markdown_backslashes_every_markup_character():
    assert escape_markdown("a*b_c[d](e)#f") == r"a\*b\_c\[d\]\(e\)\#f"
    assert escape_markdown("<b>x</b>") == "&lt;b&gt;x&lt;/b&gt;"


# --- DingTalk signing, redaction -----------------------------------------------------------------------


def test_dingtalk_sign_matches_the_documented_formula():
    secret, timestamp = "SECtest", 1700000000000
    by_hand = base64.b64encode(
        hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    ).decode()
    # printf '1700000000000\nSECtest' | openssl dgst -sha256 -hmac SECtest -binary | base64
    assert by_hand == "aZLLrriXgn05YbwaGR7knYsLeJADjr9NwLaNNKpxh4g="
    assert dingtalk_sign(secret, timestamp) == by_hand


def test_signed_url_appends_the_timestamp_and_the_url_encoded_sign():
    url = signed_url("https://oapi.dingtalk.com/robot/send?access_token=abc", "SECtest", 1700000000000)
    assert url.startswith(
        "https://oapi.dingtalk.com/robot/send?access_token=abc&timestamp=1700000000000&sign="
    )
    assert url.endswith("&sign=aZLLrriXgn05YbwaGR7knYsLeJADjr9NwLaNNKpxh4g%3D")
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    assert query["sign"] == ["aZLLrriXgn05YbwaGR7knYsLeJADjr9NwLaNNKpxh4g="]
    assert signed_url("https://h.example/send", "s", 1).startswith("https://h.example/send?timestamp=1&sign=")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://oapi.dingtalk.com/robot/send?access_token=tok", "https://oapi.dingtalk.com/***"),
        ("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=tok", "https://qyapi.weixin.qq.com/***"),
        ("http://u:pw@127.0.0.1:8080/hooks/T0/tok", "http://127.0.0.1:8080/***"),
        ("https://hook.example", "https://hook.example/"),
    ],
)
def test_redact_url_keeps_scheme_host_and_port_only(url, shown):
    assert redact_url(url) == shown


# --- the webhook client, against a real receiver -------------------------------------------------------


def test_post_json_sends_a_json_object():
    with webhook_receiver() as receiver:
        post_json(receiver.url, {"a": '标题 "quoted" <x>'}, robot=False)
    assert receiver.bodies() == [{"a": '标题 "quoted" <x>'}]
    assert receiver.posts[0][0] == "/hook?access_token=tok-SECRET-123"


def test_a_5xx_raises_without_the_url():
    with webhook_receiver(default=500) as receiver, pytest.raises(WebhookError) as info:
        post_json(receiver.url, {}, robot=False)
    assert str(info.value) == "HTTP 500" and "SECRET" not in str(info.value)


def test_a_robot_answer_with_a_nonzero_errcode_is_a_failure():
    with webhook_receiver(robot=False) as receiver, pytest.raises(WebhookError, match="errcode None"):
        post_json(receiver.url, {}, robot=True)  # 200 without errcode 0: not taken
    with webhook_receiver(robot=True) as receiver:
        post_json(receiver.url, {}, robot=True)
    assert len(receiver.posts) == 1


def test_an_unreachable_webhook_raises_without_the_url():
    with socket.socket() as sock:  # a port nothing listens on: bound, never listening
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/hook?access_token=tok-SECRET-123"
        with pytest.raises(WebhookError) as info:
            post_json(url, {}, robot=False, timeout=5)
    assert "SECRET" not in str(info.value) and "Connection refused" in str(info.value)


# --- the extension --------------------------------------------------------------------------------------


def test_the_extension_is_off_without_a_webhook_and_refuses_bad_rules():
    from scrapy.exceptions import NotConfigured
    from scrapy.utils.test import get_crawler

    from shopcrawl.extensions.alerts import Alerts

    with pytest.raises(NotConfigured) as off:
        Alerts.from_crawler(get_crawler(settings_dict={}))
    assert off.value.args == ()  # no message, so Scrapy logs no "Disabled" warning on every crawl
    bad = {"SHOPCRAWL_ALERT_WEBHOOK": "https://hook.example/x", "SHOPCRAWL_ALERT_ON": "everything"}
    with pytest.raises(ConfigError, match="SHOPCRAWL_ALERT_ON"):
        Alerts.from_crawler(get_crawler(settings_dict=bad))
    on = Alerts.from_crawler(get_crawler(settings_dict={"SHOPCRAWL_ALERT_WEBHOOK": "https://hook.example/x"}))
    assert on.config.webhook == "https://hook.example/x"


def test_the_extension_is_wired_in_the_project_settings():
    from shopcrawl import settings

    assert "shopcrawl.extensions.alerts.Alerts" in settings.EXTENSIONS
