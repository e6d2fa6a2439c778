"""Every setting: its default, how a string from the environment is read, and the error for a bad value."""

from __future__ import annotations

import pytest
from scrapy.settings import Settings

from shopcrawl.config import ConfigError, Credentials, ShopcrawlConfig, credentials_from_settings

CREDENTIALS = {
    "SHOPCRAWL_APP_KEY": "12345678",
    "SHOPCRAWL_APP_SECRET": "s3cr3t-app-secret",
    "SHOPCRAWL_SESSION": "6100a2b3c4-session",
}


def config(**values) -> ShopcrawlConfig:
    return ShopcrawlConfig.from_settings(Settings(values))


def test_defaults_are_the_documented_ones():
    assert config() == ShopcrawlConfig(
        api_url="https://gw.api.taobao.com/router/rest",
        store_uri="sqlite:///shopcrawl.db",
        page_cap=20000,
        page_size=200,
        detail_batch=20,
        fetch_desc=False,
        max_ban_wait=600.0,
        qps=0.0,
        backoff_base=0.5,
        backoff_max=8.0,
        progress_interval=5.0,
        store_batch=1000,
        store_flush_seconds=2.0,
        redis_outage_seconds=60.0,
    )


def test_an_empty_value_means_the_default():
    assert config(SHOPCRAWL_PAGE_SIZE="", SHOPCRAWL_STORE="", SHOPCRAWL_FETCH_DESC="") == config()


def test_strings_from_the_environment_are_parsed():
    parsed = config(
        SHOPCRAWL_API_URL="http://127.0.0.1:8080/router/rest",
        SHOPCRAWL_STORE="mongodb://mongo.internal:27017/shopcrawl",
        SHOPCRAWL_PAGE_CAP="100000",
        SHOPCRAWL_PAGE_SIZE="40",
        SHOPCRAWL_DETAIL_BATCH="5",
        SHOPCRAWL_FETCH_DESC="yes",
        SHOPCRAWL_MAX_BAN_WAIT="0",
        SHOPCRAWL_QPS="47.5",
        SHOPCRAWL_BACKOFF_BASE="0.25",
        SHOPCRAWL_BACKOFF_MAX="60",
        SHOPCRAWL_PROGRESS_INTERVAL="0",
        SHOPCRAWL_STORE_BATCH="100",
        SHOPCRAWL_STORE_FLUSH_SECONDS="0.5",
        SHOPCRAWL_REDIS_OUTAGE_SECONDS="5",
    )
    assert parsed == ShopcrawlConfig(
        api_url="http://127.0.0.1:8080/router/rest",
        store_uri="mongodb://mongo.internal:27017/shopcrawl",
        page_cap=100000,
        page_size=40,
        detail_batch=5,
        fetch_desc=True,
        max_ban_wait=0.0,
        qps=47.5,
        backoff_base=0.25,
        backoff_max=60.0,
        progress_interval=0.0,
        store_batch=100,
        store_flush_seconds=0.5,
        redis_outage_seconds=5.0,
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", True),
        ("TRUE", True),
        (" on ", True),
        ("Yes", True),
        ("0", False),
        ("false", False),
        ("OFF", False),
    ],
)
def test_boolean_spellings(text, expected):
    assert config(SHOPCRAWL_FETCH_DESC=text).fetch_desc is expected


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SHOPCRAWL_PAGE_SIZE", "1"),
        ("SHOPCRAWL_PAGE_SIZE", "200"),
        ("SHOPCRAWL_DETAIL_BATCH", "1"),
        ("SHOPCRAWL_DETAIL_BATCH", "20"),
        ("SHOPCRAWL_STORE_BATCH", "100000"),
        ("SHOPCRAWL_STORE_FLUSH_SECONDS", "0.01"),
        ("SHOPCRAWL_BACKOFF_MAX", "3600"),
    ],
)
def test_limits_are_inclusive(name, value):
    config(**{name: value})


def test_the_page_cap_may_equal_the_page_size_but_not_be_below_it():
    assert config(SHOPCRAWL_PAGE_SIZE="50", SHOPCRAWL_PAGE_CAP="50").page_cap == 50
    with pytest.raises(ConfigError, match="SHOPCRAWL_PAGE_CAP must be between 50 and"):
        config(SHOPCRAWL_PAGE_SIZE="50", SHOPCRAWL_PAGE_CAP="49")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SHOPCRAWL_API_URL", "gw.api.taobao.com/router/rest"),
        ("SHOPCRAWL_API_URL", "ftp://gw.api.taobao.com/router/rest"),
        ("SHOPCRAWL_PAGE_SIZE", "0"),
        ("SHOPCRAWL_PAGE_SIZE", "201"),
        ("SHOPCRAWL_PAGE_SIZE", "1.5"),
        ("SHOPCRAWL_PAGE_SIZE", "two hundred"),
        ("SHOPCRAWL_PAGE_CAP", "199"),
        ("SHOPCRAWL_PAGE_CAP", "20k"),
        ("SHOPCRAWL_DETAIL_BATCH", "0"),
        ("SHOPCRAWL_DETAIL_BATCH", "21"),
        ("SHOPCRAWL_FETCH_DESC", "maybe"),
        ("SHOPCRAWL_FETCH_DESC", "2"),
        ("SHOPCRAWL_MAX_BAN_WAIT", "-1"),
        ("SHOPCRAWL_MAX_BAN_WAIT", "nan"),
        ("SHOPCRAWL_MAX_BAN_WAIT", "10m"),
        ("SHOPCRAWL_QPS", "-0.5"),
        ("SHOPCRAWL_QPS", "inf"),
        ("SHOPCRAWL_BACKOFF_BASE", "-1"),
        ("SHOPCRAWL_BACKOFF_BASE", "601"),
        ("SHOPCRAWL_BACKOFF_MAX", "3601"),
        ("SHOPCRAWL_PROGRESS_INTERVAL", "-5"),
        ("SHOPCRAWL_PROGRESS_INTERVAL", "86401"),
        ("SHOPCRAWL_STORE_BATCH", "0"),
        ("SHOPCRAWL_STORE_BATCH", "100001"),
        ("SHOPCRAWL_STORE_FLUSH_SECONDS", "0"),
        ("SHOPCRAWL_STORE_FLUSH_SECONDS", "3601"),
        ("SHOPCRAWL_REDIS_OUTAGE_SECONDS", "-1"),
        ("SHOPCRAWL_REDIS_OUTAGE_SECONDS", "soon"),
    ],
)
def test_a_bad_value_names_the_setting_and_the_value(name, value):
    with pytest.raises(ConfigError) as caught:
        config(**{name: value})
    message = str(caught.value)
    assert message.startswith(name + " must be")
    assert value in message
    assert isinstance(caught.value, ValueError)  # what Scrapy components raise for a bad setting


def test_credentials_are_read_and_trimmed():
    creds = credentials_from_settings(
        Settings({**CREDENTIALS, "SHOPCRAWL_APP_KEY": " 12345678\n", "SHOPCRAWL_SIGN_METHOD": " HMAC "})
    )
    assert creds == Credentials("12345678", "s3cr3t-app-secret", "6100a2b3c4-session", "hmac")


def test_the_default_sign_method_is_hmac_sha256():
    assert credentials_from_settings(Settings(CREDENTIALS)).sign_method == "hmac-sha256"


def test_every_missing_credential_is_named_at_once():
    with pytest.raises(ConfigError) as caught:
        credentials_from_settings(Settings())
    assert "SHOPCRAWL_APP_KEY, SHOPCRAWL_APP_SECRET, SHOPCRAWL_SESSION" in str(caught.value)


@pytest.mark.parametrize("missing", sorted(CREDENTIALS))
@pytest.mark.parametrize("blank", [None, "", "   "], ids=["unset", "empty", "blank"])
def test_one_missing_credential_is_named_alone(missing, blank):
    settings = {**CREDENTIALS, missing: blank}
    with pytest.raises(ConfigError) as caught:
        credentials_from_settings(Settings(settings))
    named = [name for name in CREDENTIALS if name in str(caught.value)]
    assert named == [missing]


def test_an_unknown_sign_method_is_refused():
    with pytest.raises(ConfigError, match="SHOPCRAWL_SIGN_METHOD must be one of md5, hmac, hmac-sha256"):
        credentials_from_settings(Settings({**CREDENTIALS, "SHOPCRAWL_SIGN_METHOD": "sha1"}))


def test_errors_about_credentials_never_show_a_secret():
    with pytest.raises(ConfigError) as caught:
        credentials_from_settings(Settings({**CREDENTIALS, "SHOPCRAWL_APP_KEY": ""}))
    assert "s3cr3t" not in str(caught.value) and "6100a2b3c4" not in str(caught.value)


def test_credentials_repr_hides_the_secret_and_the_session():
    creds = credentials_from_settings(Settings(CREDENTIALS))
    for text in (repr(creds), str(creds), f"{creds}", repr([creds])):
        assert "s3cr3t" not in text and "6100a2b3c4" not in text
        assert "12345678" in text
