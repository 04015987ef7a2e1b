"""The notifications stored by the trading app, carried over with their ids.

Before, a notification kept one result for mail and one for the webhook; each becomes a delivery (a channel that was
not attempted leaves none). The kinds get their new names: fill -> order_filled, rejection -> order_rejected.
Going back keeps what the old table can say: the kinds it knew, and the mail and webhook results."""

from django.core.management.color import no_style
from django.db import migrations

NEW_KIND = {"fill": "order_filled", "rejection": "order_rejected", "run_failed": "run_failed"}
OLD_KIND = {new: old for old, new in NEW_KIND.items()}
CHANNELS = (("email", "mail", "mail to the account address"), ("webhook", "webhook", "the webhook (NOTIFY_WEBHOOK_URL)"))


def _reset_sequences(schema_editor, *models) -> None:
    statements = schema_editor.connection.ops.sequence_reset_sql(no_style(), models)
    with schema_editor.connection.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql)


def carry_over(apps, schema_editor) -> None:
    Old = apps.get_model("trading", "Notification")
    New = apps.get_model("notifications", "Notification")
    Delivery = apps.get_model("notifications", "Delivery")
    for old in Old.objects.order_by("pk").iterator():
        new = New.objects.create(
            pk=old.pk,
            owner_id=old.owner_id,
            kind=NEW_KIND.get(old.kind, old.kind),
            subject=old.subject,
            body=old.body,
            strategy_id=old.strategy_id,
            order_id=old.order_id,
            execution_id=old.execution_id,
            created_at=old.created_at,
        )
        for field, key, destination in CHANNELS:
            result = getattr(old, f"{field}_result")
            if result in ("sent", "failed"):
                Delivery.objects.create(
                    notification=new,
                    default_key=key,
                    destination=destination,
                    state=result,
                    attempts=1,
                    error=getattr(old, f"{field}_error"),
                    sent_at=old.created_at if result == "sent" else None,
                    next_attempt_at=None,
                    updated_at=old.created_at,
                )
    _reset_sequences(schema_editor, New, Delivery)


def carry_back(apps, schema_editor) -> None:
    Old = apps.get_model("trading", "Notification")
    New = apps.get_model("notifications", "Notification")
    for new in New.objects.filter(kind__in=OLD_KIND).prefetch_related("deliveries").order_by("pk").iterator(100):
        results = {d.default_key: d for d in new.deliveries.all() if d.state in ("sent", "failed")}
        fields = {}
        for field, key, _ in CHANNELS:
            delivery = results.get(key)
            fields[f"{field}_result"] = delivery.state if delivery else "skipped"
            fields[f"{field}_error"] = delivery.error if delivery else ""
        Old.objects.create(
            pk=new.pk,
            owner_id=new.owner_id,
            kind=OLD_KIND[new.kind],
            subject=new.subject,
            body=new.body,
            strategy_id=new.strategy_id,
            order_id=new.order_id,
            execution_id=new.execution_id,
            created_at=new.created_at,
            **fields,
        )
    _reset_sequences(schema_editor, Old)


class Migration(migrations.Migration):
    dependencies = [
        ("notifications", "0001_initial"),
        ("trading", "0008_replay_marker"),
    ]

    operations = [migrations.RunPython(carry_over, carry_back)]
