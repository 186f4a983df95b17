"""The randomized fault-and-race harness's world: money operations, injected faults, settling, invariants.

tests/test_money_harness.py drives it with Hypothesis: each step runs a few operations at
once from threads (staff and owners in the console, the customer in the portal, worker
passes as two consumers run them), each possibly preceded by a fault rule in the
simulator. After the steps everything settles, and the invariants are checked against
the simulator's journal of the writes it applied (GET /_sim/journal): what derouter did.

Operations go through the product's public service functions, as its pages and worker
tasks call them; nothing here moves money on its own.
"""

import random
import signal
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

import dataclasses

import requests
from django.db import close_old_connections, connections
from huey.contrib.djhuey import HUEY
from django.utils import timezone
from django.utils.translation import gettext_noop

from automation import budget_requests, evaluation, expiry, rotation
from automation import tasks as automation_tasks
from automation.models import Allowance, AutoTopUpRule, BudgetRequest, KeyExpiry, Rotation
from dashboard import keywrites, reconcile, topups
from dashboard import tasks as dashboard_tasks
from ledger.models import UNSETTLED_OUTCOMES, AuditEvent, Outcome, TopUp
from derouter import client
from derouter import conventions as upstream_conventions
from derouter.client import DerouterError
from work import leases
from mirror import snapshot as mirror_snapshot
from mirror import sync as mirror_sync
from mirror.models import ACCOUNT_SCOPE, KeySnapshot, UsageRecord
from work.models import Lease
from payments import codes as redemption_codes
from payments import crediting
from payments import orders as card_orders
from payments.models import CodeBatch, Order, RedemptionCode
from lib import stored_text
from lib.stored_text import read_in_english as english

# Faults a step may meet, each before one operation: (mode, extra fields of the rule).
FAULTS = (
    ("slow", {"delay": 0.1}),  # late but within the client's timeout
    ("slow", {"delay": 0.7}),  # applied after the client gave up: a late write
    ("error", {"status": 500}),
    ("error", {"status": 503}),
    ("nonjson", {}),
    ("drop", {}),
    ("applied-then-drop", {}),
    ("applied-then-slow", {"delay": 0.7}),
    ("applied-then-error", {"status": 502}),
    ("cloudflare", {"status": 522}),
    ("applied-then-cloudflare", {"status": 524}),
)
# Where a fault lands: the money writes mostly, the reads before them sometimes.
FAULT_TARGETS = (
    ("/sub-keys/", "PUT"), ("/sub-keys/", "PUT"), ("/sub-keys/", "PUT"),
    ("/sub-keys", "POST"), ("/sub-keys/", "DELETE"), ("/sub-keys", "GET"), ("/balance", "GET"),
)
OPERATIONS = (
    "top_up", "top_up", "top_up_again", "request", "approve", "approve", "decline", "worker_pass", "worker_pass",
    "spend", "spend", "auto_rule", "allowance", "expire", "rotate", "delete", "create", "sync", "settle",
    "redeem", "redeem", "start", "card_credit", "card_credit", "reclaim",
)
AMOUNTS = (Decimal("0.01"), Decimal("0.5"), Decimal("1"), Decimal("2.5"), Decimal("4"))
# The settings the harness runs under: a client that gives up quickly, writes that settle soon after.
READ_TIMEOUT_SECONDS = 0.5
WRITE_SETTLE_SECONDS = 2
# How long the slowest fault keeps a request running after its client gave up, plus a margin.
LONGEST_FAULT_SECONDS = 1
KNOWN_REFUSALS = (
    DerouterError, topups.TopUpNotAllowed, topups.KeyBusy, budget_requests.RequestNotAllowed,
    budget_requests.DecisionConflict, leases.LeaseHeld, mirror_sync.ScopeBusy,
    redemption_codes.RedemptionRefused, crediting.KeyGone,
)


class Consumers:
    """The harness's Huey consumer processes: paused (SIGSTOP) while everything settles and is checked.

    They are paused only when idle: the queue empty and no lease held (a consumer mid-task
    holds its lease), so none stops holding a key's money lock.
    """

    IDLE_WAIT_SECONDS = 60

    def __init__(self, processes):
        self.processes = processes
        self.running = bool(processes)

    def _idle(self):
        return HUEY.pending_count() == 0 and not Lease.objects.exists()

    def pause(self):
        if not self.processes:
            return
        deadline = time.monotonic() + self.IDLE_WAIT_SECONDS
        while True:
            if self._idle() or time.monotonic() > deadline:
                for process in self.processes:
                    process.send_signal(signal.SIGSTOP)
                if self._idle() or time.monotonic() > deadline:
                    self.running = False
                    return
                self.resume()
            time.sleep(0.2)

    def resume(self):
        for process in self.processes:
            process.send_signal(signal.SIGCONT)
        self.running = bool(self.processes)


@dataclass
class Figures:
    """What the harness did, for its report and the README."""

    operations: int = 0
    faults_injected: int = 0
    steps: int = 0
    examples: int = 0
    by_operation: Counter = field(default_factory=Counter)
    refusals: Counter = field(default_factory=Counter)
    discrepancies: list = field(default_factory=list)
    failed_examples: int = 0
    queued: int = 0  # operations queued to the Huey consumers rather than run in a thread
    lost_at_deletion: Decimal = Decimal(0)  # usage billed as its key was deleted, invisible to the console
    # (key id, request id, cost charged) of every spend over all examples: a key may be deleted in a later one.
    spent: list = field(default_factory=list)
    seconds: Counter = field(default_factory=Counter)
    reported: set = field(default_factory=set)
    # Every key the harness made, over all examples: a worker pass acts on earlier examples' rules too.
    key_ids: list = field(default_factory=list)

    def line(self):
        return (
            f"{self.examples} examples, {self.steps} steps, {self.operations} operations, "
            f"({self.queued} queued to the Huey consumers), {self.faults_injected} faults injected, "
            f"{len(self.discrepancies)} discrepancies in {self.failed_examples} examples; "
            f"${self.lost_at_deletion} of usage billed as its key was deleted (derouter lists it no more)"
        )


class World:
    """One example's keys, rules and requests, on the harness's own simulator."""

    def __init__(self, simulator, owner, staff, figures, consumers):
        self.simulator = simulator
        self.consumers = consumers
        self.owner = owner
        self.staff = staff
        self.figures = figures
        self.key_ids = figures.key_ids
        self.tokens = defaultdict(list)  # key id -> top-up tokens used on it (to submit again)
        self.lock = threading.Lock()
        self.journal_start = len(self._journal())
        self.steps = []  # the example's steps as drawn, printed with its problems
        self.unexpected = []  # exceptions the product should never raise
        # The example's own records come after these: earlier examples' leftovers are reported once.
        self.first_ids = {
            model: (model.objects.order_by("-id").values_list("id", flat=True).first() or 0)
            for model in (TopUp, AuditEvent, Rotation, KeyExpiry, BudgetRequest)
        }
        reconcile.open_books(client.list_sub_keys(), client.get_balance())
        # Money customers bring in: codes to redeem (several threads may type the same one) and card orders.
        batch, self.code_texts = redemption_codes.create_batch(owner, 4, Decimal("1.5"), CodeBatch.Unit.USD, note="harness")
        self.first_ids[RedemptionCode] = batch.codes.order_by("id").values_list("id", flat=True).first() - 1
        # Starter codes each make a new key with their worth as its budget (several threads may type one at once).
        _, self.starter_texts = redemption_codes.create_batch(
            owner, 3, Decimal("2"), CodeBatch.Unit.USD, note="harness starters", kind=CodeBatch.Kind.STARTER
        )
        self.first_ids[Order] = Order.objects.order_by("-id").values_list("id", flat=True).first() or 0

    # ------------------------------------------------------------ the simulator

    def _journal(self, after=0):
        response = requests.get(f"{self.simulator.base_url}/_sim/journal", params={"after": after}, timeout=10)
        response.raise_for_status()
        return response.json()["writes"]

    def inject(self, rng):
        mode, extra = rng.choice(FAULTS)
        path, method = rng.choice(FAULT_TARGETS)
        self.simulator.inject(mode, path=path, method=method, times=1, **extra)
        with self.lock:
            self.figures.faults_injected += 1

    def spend(self, sub_key_id, cost):
        response = requests.post(
            f"{self.simulator.base_url}/_sim/usage", json={"subKeyId": sub_key_id, "cost": str(cost)}, timeout=10
        )
        # A key deleted meanwhile answers 404: nothing was spent.
        if response.status_code not in (200, 404):
            response.raise_for_status()
        if response.status_code == 200:
            row = response.json()["row"]
            with self.lock:
                self.figures.spent.append((sub_key_id, row["request_id"], Decimal(str(row["cost_usdc"]))))

    # ------------------------------------------------------------ picking

    def live_keys(self):
        mine = set(self.key_ids)
        return [sub_key for sub_key in client.list_sub_keys() if sub_key.id in mine]

    def pick_key(self, rng):
        keys = self.live_keys()
        return rng.choice(keys) if keys else None

    def add_key(self, sub_key_id):
        with self.lock:
            self.key_ids.append(sub_key_id)

    def create_key(self, rng):
        budget = rng.choice((Decimal("3"), Decimal("6"), Decimal("10")))
        write = keywrites.create_key(
            self.owner, token=uuid.uuid4(), label=f"harness-{uuid.uuid4().hex[:8]}", budget=budget, rpm_limit=None
        )
        if write.created is not None:
            self.add_key(write.created.id)

    # ------------------------------------------------------------ operations

    def run(self, operation, seed):
        """Run one operation by name with its own random stream; refusals the product raises on purpose are counted."""
        rng = random.Random(seed)
        started = time.monotonic()
        try:
            getattr(self, f"op_{operation}")(rng)
        except KNOWN_REFUSALS as error:
            with self.lock:
                self.figures.refusals[type(error).__name__] += 1
        finally:
            with self.lock:
                self.figures.operations += 1
                self.figures.by_operation[operation] += 1
                self.figures.seconds[operation] += time.monotonic() - started

    def _top_up(self, rng, token=None, sub_key=None):
        sub_key = sub_key or self.pick_key(rng)
        if sub_key is None:
            return
        token = token or uuid.uuid4()
        with self.lock:
            self.tokens[sub_key.id].append(token)
        user = rng.choice((self.owner, self.staff))
        available = client.get_balance().available
        topups.top_up(user, sub_key, rng.choice(AMOUNTS), "INV-harness", token, available)

    def op_top_up(self, rng):
        self._top_up(rng)

    def op_top_up_again(self, rng):
        """The same confirmed form submitted again (a double click, a reload)."""
        with self.lock:
            used = [(key_id, token) for key_id, tokens in self.tokens.items() for token in tokens]
        if not used:
            return self._top_up(rng)
        key_id, token = rng.choice(used)
        sub_key = next((key for key in client.list_sub_keys() if key.id == key_id), None)
        if sub_key is not None:
            self._top_up(rng, token=token, sub_key=sub_key)

    def op_reclaim(self, rng):
        """An owner takes part of a key's unspent budget back (the simulator plays reduceBudgetVirtual as applied)."""
        sub_key = self.pick_key(rng)
        if sub_key is None or sub_key.remaining <= 0:
            return
        amount = min(rng.choice(AMOUNTS), sub_key.remaining)
        supported = dataclasses.replace(upstream_conventions.current(), reclaim=upstream_conventions.APPLIED)
        with upstream_conventions.assuming(supported):
            topups.reclaim(self.owner, sub_key, amount, "refund-harness", uuid.uuid4())

    def op_request(self, rng):
        sub_key = self.pick_key(rng)
        if sub_key is None:
            return
        snapshot = mirror_snapshot.record_key(sub_key) or KeySnapshot.objects.get(sub_key_id=sub_key.id)
        budget_requests.submit(snapshot, rng.choice(AMOUNTS), "more please", "")

    def _pick_request(self, rng):
        requests_ = list(BudgetRequest.objects.filter(sub_key_id__in=self.key_ids).order_by("-id")[:6])
        return rng.choice(requests_) if requests_ else None

    def op_approve(self, rng):
        budget_request = self._pick_request(rng)
        if budget_request is not None:
            budget_requests.approve(budget_request, rng.choice((self.owner, self.staff)))

    def op_decline(self, rng):
        budget_request = self._pick_request(rng)
        if budget_request is not None:
            budget_requests.decline(budget_request, rng.choice((self.owner, self.staff)), "Not this month.")

    def op_worker_pass(self, rng):
        """One automation pass: queued to the consumers, or run here as a consumer would (two may run at once)."""
        if self.consumers.running and rng.random() < 0.5:
            automation_tasks.evaluate_periodically()
            self._queued()
            return
        evaluation.evaluate_all()

    def op_spend(self, rng):
        sub_key = self.pick_key(rng)
        if sub_key is not None:
            self.spend(sub_key.id, rng.choice((Decimal("0.25"), Decimal("1.5"), Decimal("3"))))

    def op_auto_rule(self, rng):
        sub_key = self.pick_key(rng)
        if sub_key is not None:
            AutoTopUpRule.objects.create(
                sub_key_id=sub_key.id, key_label=sub_key.label, name="harness", threshold=Decimal("2"),
                amount=rng.choice((Decimal("1"), Decimal("3"))), max_times=rng.choice((None, 2)),
            )

    def op_allowance(self, rng):
        sub_key = self.pick_key(rng)
        if sub_key is not None:
            Allowance.objects.get_or_create(
                sub_key_id=sub_key.id,
                defaults={"key_label": sub_key.label, "period": Allowance.Period.DAY, "target": Decimal("8")},
            )

    def op_expire(self, rng):
        sub_key = self.pick_key(rng)
        if sub_key is not None:
            KeyExpiry.objects.get_or_create(
                sub_key_id=sub_key.id,
                defaults={"key_label": sub_key.label, "key_id_short": sub_key.key_id,
                          "expires_at": timezone.now() - timedelta(seconds=1)},
            )

    def op_rotate(self, rng):
        sub_key = self.pick_key(rng)
        if sub_key is None:
            return
        result = rotation.rotate(self.owner, sub_key, uuid.uuid4())
        if result.rotation.new_sub_key_id:
            self.add_key(result.rotation.new_sub_key_id)

    def op_delete(self, rng):
        sub_key = self.pick_key(rng)
        if sub_key is not None:
            keywrites.delete_key(self.owner, sub_key)

    def op_create(self, rng):
        self.create_key(rng)

    def op_sync(self, rng):
        sub_key = self.pick_key(rng)
        if sub_key is not None:
            mirror_snapshot.record_key(sub_key)
            mirror_sync.sync_scope(sub_key.id)

    def _queued(self):
        with self.lock:
            self.figures.queued += 1

    def op_settle(self, rng):
        """The minute task settling unknown writes: queued to the consumers, or run here as a consumer would."""
        if self.consumers.running and rng.random() < 0.5:
            dashboard_tasks.settle_unsettled_writes()
            self._queued()
            return
        keywrites.resolve_unsettled_writes(late_writes=True)

    def op_redeem(self, rng):
        """A customer redeems a code in the portal (another thread may submit the same code at once)."""
        sub_key = self.pick_key(rng)
        if sub_key is not None:
            redemption_codes.redeem(rng.choice(self.code_texts), sub_key.id)

    def op_start(self, rng):
        """A customer redeems a starter code: a new key made with the code's worth."""
        started = redemption_codes.start(rng.choice(self.starter_texts))
        if started.created is not None:
            self.add_key(started.created.id)

    def op_card_credit(self, rng):
        """A card payment Stripe reported paid is credited: a new order, or again one already paid (webhook and
        return page at once, a retry)."""
        earlier = list(self._since(Order).filter(state__in=(Order.State.PAID, Order.State.FAILED, Order.State.CREDITED)))
        if earlier and rng.random() < 0.5:
            card_orders.credit_order(rng.choice(earlier))
            return
        sub_key = self.pick_key(rng)
        if sub_key is None:
            return
        token = uuid.uuid4()
        order = Order.objects.create(
            token=token, sub_key_id=sub_key.id, key_label=sub_key.label, key_id_short=sub_key.key_id, package_name="harness",
            price=Decimal("2.00"), currency="usd", amount_minor=200, credit=Decimal("2"), display_multiplier=Decimal(1),
            amount_usd=rng.choice(AMOUNTS), payment_intent_id=f"pi_harness_{token.hex}",
        )
        intent = {"id": order.payment_intent_id, "status": "succeeded", "amount": 200, "currency": "usd",
                  "metadata": {"order": str(token)}}
        card_orders.fulfil(order, intent)

    # ------------------------------------------------------------ one step: operations at once

    def step(self, operations):
        """Run (operation, fault?, seed) triples at once, one thread each; faults are injected just before."""
        for operation, fault, seed in operations:
            if fault:
                self.inject(random.Random(seed ^ 0x5EED))
        errors = []

        def work(operation, seed):
            close_old_connections()
            try:
                self.run(operation, seed)
            except Exception as error:  # noqa: BLE001 - an unexpected error is a finding, reported by the test
                errors.append(f"{operation}: {type(error).__name__}: {error}")
            finally:
                connections.close_all()

        threads = [threading.Thread(target=work, args=(operation, seed)) for operation, _, seed in operations]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.figures.steps += 1
        self.steps.append(operations)
        self.unexpected += errors

    # ------------------------------------------------------------ settling

    def settle(self):
        """Stop faults, let the consumers finish and pause them, let every request in flight end, then settle
        everything the product settles later; the consumers go on once the invariants are checked."""
        self.simulator.clear_faults()
        started = time.monotonic()
        self.consumers.pause()
        time.sleep(WRITE_SETTLE_SECONDS + LONGEST_FAULT_SECONDS)
        for _ in range(3):
            keywrites.resolve_unsettled_writes(late_writes=True)
            budget_requests.settle_open()
            rotation.settle_open()
            for due in KeyExpiry.objects.filter(
                sub_key_id__in=self.key_ids, status__in=(KeyExpiry.Status.SCHEDULED, KeyExpiry.Status.UNKNOWN)
            ):
                expiry.evaluate_expiry(due)
            # Money in's own worker tasks: held codes and paid orders finished from their settled ledger rows.
            redemption_codes.settle_held_codes()
            self._credit_paid_orders()
        mirror_snapshot.refresh_snapshot()
        for sub_key in self.live_keys():
            mirror_sync.sync_scope(sub_key.id)
        mirror_sync.sync_scope(ACCOUNT_SCOPE)
        self.figures.seconds["(settling)"] += time.monotonic() - started

    def _credit_paid_orders(self):
        """As the order job does (check_stuck_orders), without waiting for its retry backoff."""
        for order in self._since(Order).filter(state__in=(Order.State.PAID, Order.State.FAILED)).select_related("topup"):
            if order.topup is not None and order.topup.outcome in UNSETTLED_OUTCOMES:
                continue
            if order.topup is not None:
                card_orders.settle_credit(order, order.topup, order.credit_attempts)
            else:
                card_orders.credit_order(order)

    # ------------------------------------------------------------ invariants

    def check(self):
        """Every invariant, each failure as a sentence; empty when the money is right."""
        try:
            return self._check()
        finally:
            self.consumers.resume()

    def _check(self):
        problems = []
        writes = self._journal(self.journal_start)
        mine = set(self.key_ids)
        problems += self._nothing_left_open(mine)
        problems += self._ledger_matches_journal(writes, mine)
        problems += self._returns_match_journal(writes)
        problems += self._keys_match_journal(writes, mine)
        problems += self._requests_match_money(mine)
        problems += self._reconciled()
        problems += self._mirror_matches(mine)
        problems += self._money_in_once()
        problems += [f"an operation raised {error}" for error in self.unexpected]
        # A problem left by an earlier example (a row stuck for good) is reported once.
        new = [problem for problem in problems if problem not in self.figures.reported]
        self.figures.reported.update(new)
        if new:
            self.figures.failed_examples += 1
            self.figures.discrepancies += new
            steps = "\n".join(f"    step {number}: {step}" for number, step in enumerate(self.steps, 1))
            print(f"money harness example {self.figures.examples}: {len(new)} problems\n  "
                  + "\n  ".join(new) + f"\n  after these steps (operation, fault first, seed):\n{steps}")
        return new

    def _since(self, model):
        return model.objects.filter(id__gt=self.first_ids[model])

    def _nothing_left_open(self, mine):
        problems = []
        listed = {sub_key.id for sub_key in self.live_keys()}
        for row in self._since(TopUp).filter(outcome__in=UNSETTLED_OUTCOMES):
            where = "listed" if row.sub_key_id in listed else "no longer listed"
            problems.append(f"top-up {row.token} of {row.amount.normalize()} by {row.actor_name} on {row.sub_key_id} "
                            f"({where}) still {row.outcome}: {english(row.message)}")
        for event in self._since(AuditEvent).filter(outcome__in=UNSETTLED_OUTCOMES).exclude(
            action__in=(AuditEvent.Action.TOPUP, AuditEvent.Action.RECLAIM)
        ):
            problems.append(f"audit event {event.pk} ({event.action} {event.sub_key_id}) still {event.outcome}")
        for due in self._since(KeyExpiry).exclude(
            status__in=(KeyExpiry.Status.EXPIRED, KeyExpiry.Status.CANCELLED)
        ):
            problems.append(f"expiry of {due.sub_key_id} still {due.status} ({english(due.message)})")
        for stuck in self._since(Rotation).exclude(
            status__in=(Rotation.Status.DONE, Rotation.Status.CREATE_REFUSED)
        ):
            problems.append(f"rotation {stuck.pk} of {stuck.old_sub_key_id} still {stuck.status} ({english(stuck.message)})")
        return problems

    def _ledger_matches_journal(self, writes, mine):
        """Per key, the confirmed ledger lines are exactly the budget additions derouter applied."""
        applied = defaultdict(list)
        for write in writes:
            if write["method"] == "PUT" and "addBudgetVirtual" in write["body"]:
                applied[write["path"].rsplit("/", 1)[1]].append(Decimal(write["body"]["addBudgetVirtual"]))
            if write["method"] == "PUT" and "reduceBudgetVirtual" in write["body"]:
                # A reclaim: the ledger records it as a negative move.
                applied[write["path"].rsplit("/", 1)[1]].append(-Decimal(write["body"]["reduceBudgetVirtual"]))
        confirmed = defaultdict(list)
        for sub_key_id, amount in self._since(TopUp).filter(outcome=Outcome.OK, kind=TopUp.Kind.MOVE).values_list(
            "sub_key_id", "amount"
        ):
            confirmed[sub_key_id].append(Decimal(amount).normalize())
        problems = []
        for sub_key_id in sorted(set(applied) | set(confirmed)):
            did = sorted(amount.normalize() for amount in applied[sub_key_id])
            said = sorted(confirmed[sub_key_id])
            if did != said:
                rows = "; ".join(
                    f"{row.amount.normalize()} {row.outcome} by {row.actor_name} ({english(row.note)}): {english(row.message)}"
                    for row in self._since(TopUp).filter(sub_key_id=sub_key_id, kind=TopUp.Kind.MOVE).order_by("created_at", "id")
                )
                problems.append(f"key {sub_key_id}: derouter applied top-ups {[str(a) for a in did]}, the ledger "
                                f"confirms {[str(a) for a in said]}; its rows: {rows}")
        return problems

    def _returns_match_journal(self, writes):
        """Every key derouter deleted has one confirmed return line, of what derouter answered it returned.

        A line settled from the key list (the delete's answer lost) holds the remaining read just
        before the delete: at least what derouter returned (usage charged meanwhile is not returned).
        """
        problems = []
        refunded = {write["path"].rsplit("/", 1)[1]: Decimal(str(write["answer"]["refundedVirtual"]))
                    for write in writes if write["method"] == "DELETE"}
        lines = defaultdict(list)
        for line in self._since(TopUp).filter(kind=TopUp.Kind.RETURN, outcome=Outcome.OK):
            lines[line.sub_key_id].append(line)
        for sub_key_id in sorted(set(refunded) | set(lines)):
            found = lines[sub_key_id]
            if sub_key_id not in refunded:
                problems.append(f"key {sub_key_id}: {len(found)} confirmed return line(s), but derouter deleted nothing")
            elif len(found) != 1:
                problems.append(f"key {sub_key_id}: derouter returned {refunded[sub_key_id]} on its delete; "
                                f"{len(found)} confirmed return lines")
            elif (-found[0].amount < refunded[sub_key_id]
                  or (not found[0].outcome_inferred and -found[0].amount != refunded[sub_key_id])):
                problems.append(f"key {sub_key_id}: derouter returned {refunded[sub_key_id]} on its delete; the ledger "
                                f"says {-found[0].amount} ({'inferred' if found[0].outcome_inferred else 'its answer'})")
        return problems

    def _keys_match_journal(self, writes, mine):
        """Every key derouter created or deleted has the console's record saying so (nothing moved unrecorded)."""
        problems = []
        created_ok = set(
            AuditEvent.objects.filter(action=AuditEvent.Action.CREATE, outcome=Outcome.OK).values_list("sub_key_id", flat=True)
        )
        deleted_ok = Counter(
            AuditEvent.objects.filter(action=AuditEvent.Action.DELETE, outcome=Outcome.OK).values_list("sub_key_id", flat=True)
        )
        for write in writes:
            if write["method"] == "POST":
                if write["answer"]["id"] not in created_ok:
                    problems.append(f"derouter created key {write['answer']['id']} (budget {write['body'].get('budgetVirtual')}) "
                                    "with no confirmed create in the console's records")
            elif write["method"] == "DELETE":
                sub_key_id = write["path"].rsplit("/", 1)[1]
                if sub_key_id in mine and not deleted_ok[sub_key_id]:
                    problems.append(f"derouter deleted key {sub_key_id} with no confirmed delete in the console's records")
        return problems

    def _requests_match_money(self, mine):
        """An approved request's top-up landed; a declined one moved no money."""
        problems = []
        for budget_request in BudgetRequest.objects.all():
            # The approval's ledger note is a note (read in each reader's language): compared as stored.
            note = stored_text.note(gettext_noop("Budget request #%(number)s"), number=budget_request.pk)
            landed = TopUp.objects.filter(note=note, outcome=Outcome.OK, sub_key_id=budget_request.sub_key_id).count()
            if budget_request.status == BudgetRequest.Status.APPROVED and landed != 1:
                problems.append(f"budget request {budget_request.pk} approved with {landed} confirmed top-ups")
            if budget_request.status == BudgetRequest.Status.DECLINED and landed:
                problems.append(f"budget request {budget_request.pk} declined but {landed} top-up(s) landed")
            if budget_request.status == BudgetRequest.Status.PENDING and landed:
                problems.append(f"budget request {budget_request.pk} still waiting but {landed} top-up(s) landed")
            if budget_request.status in budget_requests.OPEN_APPROVALS:
                problems.append(f"budget request {budget_request.pk} still {budget_request.status} ({english(budget_request.message)})")
        return problems

    def _money_in_once(self):
        """Each code and each card order put money on a key at most once, and says so exactly when it did."""
        problems = []
        things = [("code", code.pk, code.attempts, code.state == RedemptionCode.State.REDEEMED, f"code …{code.hint}")
                  for code in self._since(RedemptionCode)]
        things += [("order", order.pk, order.credit_attempts, order.state == Order.State.CREDITED, f"order {order.pk}")
                   for order in self._since(Order)]
        starters = [thing for thing in things if thing[0] == "code"
                    and RedemptionCode.objects.get(pk=thing[1]).batch.is_starter]
        things = [thing for thing in things if thing not in starters]
        for _, pk, attempts, says_made, name in starters:
            tokens = [crediting.token_for("starter", pk, number) for number in range(attempts + 1)]
            made = set(AuditEvent.objects.filter(form_token__in=tokens, action=AuditEvent.Action.CREATE, outcome=Outcome.OK)
                       .values_list("sub_key_id", flat=True))
            # A key made late, after the code had made another (or was revoked), is taken back: deleted, budget returned.
            redeemed_by = RedemptionCode.objects.get(pk=pk).sub_key_id
            taken_back = set(AuditEvent.objects.filter(
                action=AuditEvent.Action.DELETE, outcome=Outcome.OK, actor_name="starter code", sub_key_id__in=made
            ).values_list("sub_key_id", flat=True))
            kept = made - taken_back
            if len(kept) > 1:
                problems.append(f"starter {name} made {len(kept)} keys it kept")
            if says_made != (len(kept) == 1) or (says_made and kept != {redeemed_by}):
                problems.append(f"starter {name} says {'redeemed' if says_made else 'not redeemed'} "
                                f"(by {redeemed_by or 'no key'}) with {len(kept)} keys kept ({len(made)} made)")
        for kind, pk, attempts, says_credited, name in things:
            tokens = [crediting.token_for(kind, pk, number) for number in range(attempts + 1)]
            landed = TopUp.objects.filter(token__in=tokens, outcome=Outcome.OK).count()
            if landed > 1:
                problems.append(f"{name} credited {landed} times")
            if says_credited != (landed == 1):
                problems.append(f"{name} says {'credited' if says_credited else 'not credited'} with {landed} confirmed top-ups")
        listed = {sub_key.id for sub_key in self.live_keys()}
        # An order whose key was deleted stays failed for a person to refund: that is its answer, not a fault.
        for order in self._since(Order).filter(state__in=(Order.State.PAID, Order.State.FAILED), sub_key_id__in=listed):
            problems.append(f"order {order.pk} still {order.state} after settling ({english(order.message)})")
        return problems

    def _deletion_gap(self):
        """How far derouter's available balance moved from the ledger's account through this example's deletes.

        Per key derouter deleted: what it returned less the ledger's return line (nothing when
        the line came from its answer; the usage charged meanwhile when the line was settled from
        the key list), less the usage it charged after the delete (a request under way as the key
        was deleted is billed to the account, and derouter lists a deleted key's usage no more).
        Worked out from derouter's journal (every budget the key was given) and the harness's own
        spends (every charge on the key): derouter's behaviour, counted apart, not the console's error.
        """
        budget, refunded = defaultdict(Decimal), {}
        for write in self._journal():
            body, answer = write["body"], write["answer"]
            if write["method"] == "POST":
                budget[answer["id"]] += Decimal(str(body["budgetVirtual"]))
                continue
            sub_key_id = write["path"].rsplit("/", 1)[1]
            if write["method"] == "PUT":
                budget[sub_key_id] += Decimal(str(body.get("addBudgetVirtual", 0)))
                budget[sub_key_id] -= Decimal(str(body.get("reduceBudgetVirtual", 0)))
            elif write["method"] == "DELETE":
                refunded[sub_key_id] = Decimal(str(answer["refundedVirtual"]))
        deleted_now = {write["path"].rsplit("/", 1)[1] for write in self._journal(self.journal_start)
                       if write["method"] == "DELETE"}
        with self.lock:
            charged = defaultdict(Decimal)
            for sub_key_id, _, cost in self.figures.spent:
                charged[sub_key_id] += cost
        lines = dict(TopUp.objects.filter(kind=TopUp.Kind.RETURN, outcome=Outcome.OK, sub_key_id__in=deleted_now)
                     .values_list("sub_key_id", "amount"))
        gap = Decimal(0)
        for sub_key_id in deleted_now:
            after_delete = charged[sub_key_id] - (budget[sub_key_id] - refunded[sub_key_id])
            gap += refunded[sub_key_id] + lines.get(sub_key_id, Decimal(0)) - after_delete
        return gap

    def _reconciled(self):
        report = reconcile.reconcile(catch_up=False)
        gap = self._deletion_gap()
        problems = []
        for difference in report.differences:
            if difference.kind == reconcile.Kind.ACCOUNT and gap and abs(difference.amount - gap) <= reconcile.BALANCE_PLACES:
                self.figures.lost_at_deletion -= gap
                continue
            problems.append(f"reconcile: {difference.describe()}")
        if abs(gap) > reconcile.BALANCE_PLACES and not any(
            difference.kind == reconcile.Kind.ACCOUNT for difference in report.differences
        ):
            problems.append(f"derouter's deletes moved the available balance by {gap}, and reconcile saw no account difference")
        return problems

    def _mirror_matches(self, mine):
        """The mirror holds exactly derouter's rows for every live key of the example."""
        problems = []
        for sub_key in self.live_keys():
            upstream, page = {}, 1
            while True:
                usage = client.fetch_usage_logs(page=page, limit=100, sub_key_id=sub_key.id).decode()
                upstream.update({log.request_id: log.cost for log in usage.logs})
                if page >= usage.pages:
                    break
                page += 1
            held = {
                request_id: Decimal(cost)
                for request_id, cost in UsageRecord.objects.filter(key__sub_key_id=sub_key.id).values_list("request_id", "cost")
            }
            if held != upstream:
                missing = sorted(set(upstream) - set(held))
                extra = sorted(set(held) - set(upstream))
                problems.append(f"mirror of {sub_key.id}: {len(missing)} rows missing, {len(extra)} extra, "
                                f"{sum(1 for r in set(held) & set(upstream) if held[r] != upstream[r])} with another cost")
        return problems
