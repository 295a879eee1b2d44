from datetime import UTC, datetime

from bson import ObjectId
from pymongo import UpdateOne

from streams import documents
from streams.entity_ids import derived_ids, object_id
from streams.topic_records import EntitySnapshot

RETRIEVED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()


def snap(kind: str, ident: str, data: dict, acks: list[str] | None = None) -> EntitySnapshot:
    return EntitySnapshot(entity=f"mc.ien.{kind}*{ident}", tenant="ien", kind=kind, data=data,
                          retrieved_at=RETRIEVED, acks=acks)


def test_identity_maps_attributes_and_counts_fields() -> None:
    update = documents.identity_update(snap("subscriber", "7", {
        "id": 7, "email_address": "  Jane.Doe@Example.COM ", "created_date": "2020-09-04T08:35:29-06:00",
        "attributes": {"First Name": " Jane ", "Last Name": "", "Industry": "Mining", "Other": "x"},
    }))
    created = datetime(2020, 9, 4, 14, 35, 29, tzinfo=UTC)
    empty = ["familyName", "title", "companyName", "street", "city", "region", "postalCode", "country",
             "phoneNumber", "attributes.Job Function", "attributes.NAICS Code"]  # mapped fields without a value
    assert update == UpdateOne({"entity": "mc.ien.subscriber*7"}, {
        "$set": {
            "entity": "mc.ien.subscriber*7",
            "externalSource.namespace": "FuelSOAP:Subscriber",
            "externalSource.identifier": "7",
            "externalSource.lastRetrievedAt": datetime.fromtimestamp(RETRIEVED, UTC),
            "externalSource.createdAt": created,
            "externalSource.updatedAt": created,  # no modified date: the created one
            "emailAddress": "jane.doe@example.com",
            "emailDomain": "example.com",
            "fieldCount": 3,
            "givenName": "Jane",
            "attributes.Industry": "Mining",
        },
        "$setOnInsert": {
            "_id": object_id("mc.ien.subscriber*7"),
            "inactive": False, "inactiveCustomerIds": [], "inactiveCampaignIds": [], "inactiveLineItemIds": [],
            "createdAt": datetime.fromtimestamp(RETRIEVED, UTC),
        },
        "$unset": dict.fromkeys(empty, ""),
    }, upsert=True)


def test_category_full_name_and_parent() -> None:
    parent = ObjectId()  # an adopted folder keeps the _id the previous system gave it
    update = documents.category_update(snap("category", "3", {
        "id": 3, "parent_id": 2, "name": "my emails", "path": ["Root", "my emails", "News"],
    }), {"mc.ien.category*2": parent})
    assert update == UpdateOne({"entity": "mc.ien.category*3"}, {
        "$set": {
            "entity": "mc.ien.category*3",
            "externalSource.namespace": "FuelSOAP:DataFolder",
            "externalSource.identifier": "3",
            "externalSource.lastRetrievedAt": datetime.fromtimestamp(RETRIEVED, UTC),
            "externalSource.createdAt": None,
            "externalSource.updatedAt": None,
            "name": "My Emails",
            "fullName": "Root | My Emails | News",
            "parentId": parent,
        },
        "$setOnInsert": {"_id": object_id("mc.ien.category*3"), "hasDeployments": False, "rollupMetrics": False,
                         "isNewsletter": False},
    }, upsert=True)


def test_send_fields_flags_and_sending_without_date() -> None:
    data = {
        "id": 5, "email_id": 9, "subject": "[TEST]: hello", "status": "Sending", "sent_date": None,
        "email_name": "N", "from_address": "a@b.c", "from_name": "A", "preview_url": "u",
        "number_sent": 10, "number_delivered": 9, "unique_opens": 3, "unique_clicks": 2, "unsubscribes": 1,
        "forwarded_emails": 0, "hard_bounces": 1, "soft_bounces": 2, "other_bounces": 3,
        "created_date": "2020-01-01T00:00:00-06:00", "modified_date": "2020-01-02T00:00:00-06:00",
    }
    update = documents.send_update(snap("send", "5", data), {"rollupMetrics": True, "isNewsletter": False},
                                   derived_ids(["mc.ien.email*9"]))
    assert update == UpdateOne({"entity": "mc.ien.send*5"}, {
        "$set": {
            "entity": "mc.ien.send*5",
            "externalSource.namespace": "FuelSOAP:Send",
            "externalSource.identifier": "5",
            "externalSource.lastRetrievedAt": datetime.fromtimestamp(RETRIEVED, UTC),
            "externalSource.createdAt": datetime(2020, 1, 1, 6, tzinfo=UTC),
            "externalSource.updatedAt": datetime(2020, 1, 2, 6, tzinfo=UTC),
            "name": "N", "fromEmail": "a@b.c", "fromName": "A", "subject": "[TEST]: hello", "url": "u",
            "status": "Sending",
            "sentDate": datetime.fromtimestamp(RETRIEVED, UTC),  # still sending, no date: when it was retrieved
            "metrics": {"sent": 10, "delivered": 9, "uniqueOpens": 3, "uniqueClicks": 2, "unsubscribes": 1,
                        "forwards": 0, "bounces": 6},
            "isTestSend": True,
            "deploymentId": object_id("mc.ien.email*9"),
            "rollupMetrics": True, "isNewsletter": False,
        },
        "$setOnInsert": {"_id": object_id("mc.ien.send*5")},
    }, upsert=True)


def test_send_urls_one_per_url_of_each_ack() -> None:
    send = snap("send", "5", {"id": 5, "email_id": 9, "subject": "Hi", "status": "Complete",
                              "sent_date": "2020-01-01T10:00:00-06:00"}, acks=["a", "b", "none"])
    u1, u2 = ObjectId("5f47e1c107809f52ef34357c"), ObjectId("5f47e1c107809f52ef34357d")
    ids = {send.entity: ObjectId(), "mc.ien.email*9": ObjectId(), "mc.ien.category*3": ObjectId()}
    ops = documents.send_url_updates(send, "mc.ien.category*3", {"a": [u1, u2], "b": [u2]}, ids)
    assert ops == [
        UpdateOne({"sendId": ids[send.entity], "urlId": url},
                  {"$set": {"sentDate": datetime(2020, 1, 1, 16, tzinfo=UTC)},
                   "$setOnInsert": {"_id": object_id(f"send-url|{send.entity}|{url}"),
                                    "deploymentId": ids["mc.ien.email*9"], "categoryId": ids["mc.ien.category*3"],
                                    "isTestSend": False}},
                  upsert=True)
        for url in (u1, u2)
    ]


def test_test_send_prefixes() -> None:
    assert documents.is_test_send("Test Send: x")
    assert documents.is_test_send("  test send")
    assert not documents.is_test_send("Testing")
    assert not documents.is_test_send(None)
