"""`scrapy crawl shop` into a real MongoDB-wire server (FerretDB, or SHOPCRAWL_TEST_MONGO_URI)."""

from __future__ import annotations

import pymongo

from tests.conftest import crawl


def _bad_keys(value, path="") -> list[str]:
    """Every key anywhere in a document that MongoDB would read as an operator or a path."""
    found = []
    if isinstance(value, dict):
        for key, sub in value.items():
            if key.startswith("$") or "." in key or "\x00" in key:
                found.append(path + key)
            found += _bad_keys(sub, f"{path}{key}/")
    elif isinstance(value, list):
        for n, sub in enumerate(value):
            found += _bad_keys(sub, f"{path}{n}/")
    return found


def test_a_crawl_and_an_identical_second_one(sandbox_factory, tmp_path, mongo_uri):
    """1,500 items, twice; benchmarks/mongo_store.py measures 20,000."""
    sandbox = sandbox_factory("--items", "1500", "--seed", "53")
    shop = sandbox.shop()
    skus = sum(max(1, len(item.get("skus") or [])) for item in shop)
    env = {"SHOPCRAWL_STORE": mongo_uri}
    first = crawl(sandbox.url, tmp_path, env=env, timeout=600)
    assert first.returncode == 0, first.stderr
    client = pymongo.MongoClient(mongo_uri)
    try:
        db = client.get_default_database()
        assert db.items.count_documents({}) == 1500
        assert db.items.count_documents({"skus.0": {"$exists": True}}) == sum(
            1 for i in shop if i.get("skus")
        )
        (run,) = db.runs.find()
        assert (run["status"], run["coverage"], run["items_stored"]) == ("complete", 1.0, 1500)
        assert db.observations.count_documents({"run_id": run["run_id"]}) == skus
        price = {i["num_iid"]: i["price"] for i in shop}
        sample = db.items.find({}, {"num_iid": 1, "price": 1, "price_fen": 1}).limit(500)
        assert all(d["price"] == price[d["num_iid"]] and isinstance(d["price_fen"], int) for d in sample)
        second = crawl(sandbox.url, tmp_path, env=env, timeout=600)
        assert second.returncode == 0, second.stderr
        assert db.items.count_documents({}) == 1500
        assert db.runs.count_documents({}) == 2
        runs = [r["run_id"] for r in db.runs.find()]
        assert [db.observations.count_documents({"run_id": r}) for r in runs] == [skus, skus]
        assert db.observations.count_documents({}) == 2 * skus
    finally:
        client.close()


def test_hostile_keys_execute_no_operator_and_are_counted(sandbox_factory, tmp_path, mongo_uri):
    sandbox = sandbox_factory("--items", "300", "--seed", "59", "--hostile-items", "25")
    hostile = set(sandbox.bad_items()["hostile"])
    truth = {i["num_iid"]: i for i in sandbox.shop()}
    result = crawl(sandbox.url, tmp_path, env={"SHOPCRAWL_STORE": mongo_uri})
    assert result.returncode == 0, result.stderr
    client = pymongo.MongoClient(mongo_uri)
    try:
        db = client.get_default_database()
        docs = {d["num_iid"]: d for d in db.items.find()}
        assert len(docs) == 300
        for collection in ("items", "observations", "runs", "rejects"):
            for doc in db[collection].find():
                assert _bad_keys(doc) == [], (collection, _bad_keys(doc))
        for num_iid in hostile:  # the "$set"/"$inc" payloads changed nothing
            assert (docs[num_iid]["price"], docs[num_iid]["num"]) == (
                truth[num_iid]["price"],
                truth[num_iid]["num"],
            )
            assert "＄set" in docs[num_iid]["extras"] and "a．b" in docs[num_iid]["extras"]
        escaped = sum(6 + 2 * len(truth[n].get("skus") or []) for n in hostile)
        assert f"'shopcrawl/store/escaped_keys': {escaped}," in result.log
    finally:
        client.close()
