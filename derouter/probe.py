"""The upstream probe (manage.py check_upstream): find out, with a small probe key, which conventions derouter follows.

With at most PROBE_MAX_SPEND of budget, all of it returned at the end, it creates a probe key
(asking for a markup in the POST), tries a markup PUT, an rpm PUT, a top-up and a reclaim, reads
the key list and the key's own /sub-key/balance after each, and deletes the key. Every call is
recorded (a ProbeStep) before it is made and settled with derouter's answer; a failure mid-way
deletes the probe key, or says exactly what is left. What it found is stored
(derouter.conventions.store) and reported with the evidence.

It speaks to derouter as the reference reads it (no conversion of amounts): telling the
conventions apart is its job.
"""

from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext as _

from derouter import client
from derouter import conventions as upstream_conventions
from derouter.conventions import (
    AFTER_CREATION,
    ANYTIME,
    APPLIED,
    AT_CREATION,
    CUSTOMER,
    IGNORED,
    NEVER,
    REAL,
    REFUSED,
    WRITES,
)
from derouter.models import ProbeRun, ProbeStep

PROBE_BUDGET = Decimal("0.50")
PROBE_TOP_UP = Decimal("0.30")
PROBE_RECLAIM = Decimal("0.10")
PROBE_MAX_SPEND = Decimal("1")  # the most the probe ever locks: budget plus top-up
CREATION_MULTIPLIER = Decimal("2")
CREATION_RPM, LATER_RPM = 30, 20
# /balance shows four decimals.
BALANCE_PLACES = Decimal("0.0001")


class ProbeFailed(Exception):
    """The probe could not finish; the message says why (and the run what is left)."""


@dataclass
class Findings:
    """What the probe has learnt so far, with the evidence of each finding."""

    amounts: str = REAL
    multiplier_at_creation: bool = False
    multiplier_put: str = IGNORED
    limits_settable: bool = False
    write_statuses: dict = field(default_factory=dict)
    write_bodies: dict = field(default_factory=dict)
    reclaim: str = REFUSED
    evidence: dict = field(default_factory=dict)

    @property
    def multiplier(self):
        after = self.multiplier_put == APPLIED
        if self.multiplier_at_creation:
            return ANYTIME if after else AT_CREATION
        return AFTER_CREATION if after else NEVER


class Probe:
    """One run: its record, the probe key once made, and what was found."""

    def __init__(self, say=None):
        self.say = say or (lambda line: None)
        self.run = ProbeRun.objects.create(base_url=settings.DEROUTER_API_BASE)
        self.found = Findings()
        self.key = None  # the probe key once derouter has it (a SubKey)
        self.label = f"check_upstream probe {timezone.now():%Y-%m-%d %H:%M:%S}"

    # -- recording ----------------------------------------------------------------------

    def call(self, name, request, function, *args, **kwargs):
        """Record a step, make the call, settle the step with its status; return (result, error, status)."""
        step = ProbeStep.objects.create(run=self.run, name=name, request=request[:300])
        self.say(f"- {name}: {request}")
        with client.recording_answers() as answers:
            try:
                result, error = function(*args, **kwargs), None
            except client.DerouterError as raised:
                result, error = None, raised
        step.status = answers[-1].status if answers else None
        step.outcome = (f"{type(error).__name__}: {error.message}" if error else "ok")[:300]
        step.save(update_fields=["status", "outcome"])
        return result, error, answers

    def available(self, name):
        balance, error, _ = self.call(name, "GET /balance", client.get_balance)
        if error:
            raise ProbeFailed(f"reading the balance failed: {error.message}")
        return balance.available

    def listed(self, name):
        keys, error, _ = self.call(name, "GET /sub-keys", client.list_sub_keys)
        if error:
            raise ProbeFailed(f"reading the key list failed: {error.message}")
        return next((key for key in keys if key.id == self.key.id), None) if self.key else None

    # -- the run ------------------------------------------------------------------------

    def execute(self):
        """Probe, store the conventions and return the run; on failure delete the probe key or say what is left."""
        with upstream_conventions.assuming(upstream_conventions.AS_SENT):
            # Whatever stops the probe (a refusal, a bug, an interrupt), its key must not keep its budget.
            stopped_because = "the probe stopped unexpectedly (the error follows)"
            try:
                self.run.simulated = client.is_simulator()
                before = self.available("balance before")
                self.run.balance_before = before
                self.run.save(update_fields=["simulated", "balance_before"])
                if before < PROBE_MAX_SPEND:
                    raise ProbeFailed(f"the probe needs ${PROBE_MAX_SPEND} available for a moment; "
                                      f"derouter shows ${before}.")
                self.create(before)
                self.markup_after_creation()
                self.rate_limit()
                self.top_up()
                self.reclaim()
                self.delete()
                after = self.available("balance after")
                stopped_because = None
            except ProbeFailed as failure:
                stopped_because = str(failure)
                raise
            finally:
                if stopped_because is not None:
                    self.fail(stopped_because)
        self.run.balance_after = after
        self.run.outcome = ProbeRun.Outcome.OK
        self.run.finished_at = timezone.now()
        self.run.report = self.report(before, after)
        self.run.save()
        upstream_conventions.store(self.conventions(), self.run)
        return self.run

    def create(self, before):
        body = f"budgetVirtual={PROBE_BUDGET}, rpmLimit={CREATION_RPM}, displayMultiplier={CREATION_MULTIPLIER}"
        created, error, answers = self.call("create with markup", f"POST /sub-keys {body}", client.create_sub_key,
                                            PROBE_BUDGET, label=self.label, rpm_limit=CREATION_RPM,
                                            display_multiplier=CREATION_MULTIPLIER)
        if isinstance(error, client.Rejected):
            self.found.evidence["multiplier at creation"] = f"POST with displayMultiplier refused: {error.message}"
            created, error, answers = self.call("create", f"POST /sub-keys budgetVirtual={PROBE_BUDGET}",
                                                client.create_sub_key, PROBE_BUDGET, label=self.label,
                                                rpm_limit=CREATION_RPM)
        if isinstance(error, client.OutcomeUnknown):
            created = self.find_by_label()
        elif error:
            raise ProbeFailed(f"creating the probe key failed: {error.message}")
        self.note_write("create", answers)
        self.key = created
        self.run.probe_key_id = created.id
        self.run.save(update_fields=["probe_key_id"])
        listed = self.listed("read the new key")
        if listed is None:
            raise ProbeFailed("the probe key is not in the key list after it was created.")
        debit = before - self.available("balance after create")
        own, own_error, _ = self.call("the key's own balance", "GET /sub-key/balance (probe key)",
                                      client.get_client_balance, created.secret.reveal())
        if own_error:
            raise ProbeFailed(f"reading the probe key's own balance failed: {own_error.message}")
        self.found.multiplier_at_creation = listed.display_multiplier == CREATION_MULTIPLIER
        self.found.evidence.setdefault(
            "multiplier at creation",
            f"asked {CREATION_MULTIPLIER}x in the POST, the list shows {listed.display_multiplier}x")
        self.found.limits_settable = listed.rpm_limit == CREATION_RPM
        self.found.evidence["rate limits"] = f"asked {CREATION_RPM} rpm at creation, the list shows {listed.rpm_limit}"
        if listed.display_multiplier != 1:
            self.decide_amounts(PROBE_BUDGET, debit, listed.display_multiplier, "creating")
        self.found.evidence["customer view at creation"] = (
            f"budgetVirtual {listed.budget} in the list, the balance paid {debit}, "
            f"the key's own /sub-key/balance shows budget {own.budget}")

    def find_by_label(self):
        """After a create whose answer was lost: the probe key, found by its label, or a failure saying so."""
        keys, error, _ = self.call("look for the probe key", "GET /sub-keys", client.list_sub_keys)
        found = [key for key in keys or () if key.label == self.label]
        if error or len(found) != 1:
            raise ProbeFailed(f"creating the probe key gave no answer and the key list does not show it; "
                              f"look for a key labelled {self.label!r} and delete it.")
        return found[0]

    def decide_amounts(self, asked, debit, multiplier, when):
        """Real units debit what was asked; customer units debit it divided by the multiplier."""
        real_debit = asked.quantize(BALANCE_PLACES)
        customer_debit = (asked / multiplier).quantize(BALANCE_PLACES)
        if abs(debit - real_debit) <= BALANCE_PLACES:
            self.found.amounts = REAL
        elif abs(debit - customer_debit) <= BALANCE_PLACES:
            self.found.amounts = CUSTOMER
        else:
            raise ProbeFailed(f"{when} with {asked} at {multiplier}x debited {debit}: neither real "
                              f"({real_debit}) nor customer units ({customer_debit}).")
        self.found.evidence["amounts"] = (f"{when} with {asked} at {multiplier}x debited {debit} from the balance "
                                          f"(real units would debit {real_debit}, customer units {customer_debit})")

    def markup_after_creation(self):
        target = Decimal("3") if self.found.multiplier_at_creation else CREATION_MULTIPLIER
        _, error, answers = self.call("markup after creation", f"PUT /sub-keys/:id displayMultiplier={target}",
                                      client.update_sub_key, self.key.id, display_multiplier=target)
        listed = self.listed("read back the markup")
        if isinstance(error, client.Rejected):
            self.found.multiplier_put = REFUSED
            detail = f"refused: {error.message}"
        elif error:
            raise ProbeFailed(f"the markup PUT failed: {error.message}")
        else:
            self.note_write("update", answers)
            kept = listed is not None and listed.display_multiplier == target
            self.found.multiplier_put = APPLIED if kept else IGNORED
            detail = f"answered {answers[-1].status}, the list then shows {listed.display_multiplier}x"
        self.found.evidence["multiplier after creation"] = f"PUT displayMultiplier={target}: {detail}"

    def rate_limit(self):
        _, error, answers = self.call("rate limit", f"PUT /sub-keys/:id rpmLimit={LATER_RPM}",
                                      client.update_sub_key, self.key.id, rpm_limit=LATER_RPM)
        listed = self.listed("read back the rate limit")
        kept = error is None and listed is not None and listed.rpm_limit == LATER_RPM
        self.found.limits_settable = self.found.limits_settable or kept
        outcome = f"refused: {error.message}" if error else f"the list then shows {listed.rpm_limit} rpm"
        self.found.evidence["rate limits"] += f"; PUT rpmLimit={LATER_RPM}: {outcome}"

    def top_up(self):
        before = self.available("balance before top-up")
        _, error, answers = self.call("top up", f"PUT /sub-keys/:id addBudgetVirtual={PROBE_TOP_UP}",
                                      client.update_sub_key, self.key.id, add_budget=PROBE_TOP_UP)
        if error:
            raise ProbeFailed(f"the top-up failed: {error.message}")
        self.note_write("update", answers)
        debit = before - self.available("balance after top-up")
        listed = self.listed("read back the top-up")
        if listed.display_multiplier != 1 and "amounts" not in self.found.evidence:
            self.decide_amounts(PROBE_TOP_UP, debit, listed.display_multiplier, "topping up")
        elif "amounts" not in self.found.evidence:
            self.found.evidence["amounts"] = ("the key stayed at 1x, where real and customer units are the same: "
                                              f"topping up {PROBE_TOP_UP} debited {debit}")

    def reclaim(self):
        before = self.available("balance before reclaim")
        _, error, answers = self.call("reclaim", f"PUT /sub-keys/:id reduceBudgetVirtual={PROBE_RECLAIM}",
                                      client.reclaim_budget, self.key.id, PROBE_RECLAIM)
        if isinstance(error, client.Rejected):
            self.found.reclaim = REFUSED
            self.found.evidence["reclaim"] = f"PUT reduceBudgetVirtual refused: {error.message}"
            return
        if error:
            raise ProbeFailed(f"the reclaim failed: {error.message}")
        returned = self.available("balance after reclaim") - before
        self.found.reclaim = APPLIED if returned > 0 else IGNORED
        self.found.evidence["reclaim"] = (f"PUT reduceBudgetVirtual={PROBE_RECLAIM} answered {answers[-1].status}; "
                                          f"the balance got back {returned}")

    def delete(self):
        _, error, answers = self.call("delete", "DELETE /sub-keys/:id", client.delete_sub_key, self.key.id)
        if error:
            raise ProbeFailed(f"deleting the probe key failed: {error.message}")
        self.note_write("delete", answers)
        self.key = None

    def note_write(self, write, answers):
        """Keep the status of the write's own answer (a bodiless create is followed by a list read)."""
        written = [answer for answer in answers if answer.method != "GET" and 200 <= answer.status < 300]
        if written:
            self.found.write_statuses.setdefault(write, written[-1].status)
            self.found.write_bodies.setdefault(write, written[-1].had_body)

    def fail(self, reason):
        """Delete the probe key if there is one; record exactly what is left if that fails too."""
        left = ""
        if self.key is not None:
            _, error, _ = self.call("delete after failure", "DELETE /sub-keys/:id", client.delete_sub_key,
                                    self.key.id)
            if error and not isinstance(error, client.NotFound):
                left = (f"The probe key {self.key.key_id} (id {self.key.id}, label {self.label!r}) is still at "
                        f"derouter with its budget: delete it in the console. ({error.message})")
        self.run.outcome = ProbeRun.Outcome.FAILED
        self.run.finished_at = timezone.now()
        self.run.left_over = left
        self.run.report = f"Failed: {reason}\n" + (left or "Nothing is left at derouter.")
        self.run.save()

    # -- results ------------------------------------------------------------------------

    def conventions(self):
        found = self.found
        return upstream_conventions.Conventions(
            amounts=found.amounts, multiplier=found.multiplier, multiplier_put=found.multiplier_put,
            limits_settable=found.limits_settable, write_statuses=found.write_statuses,
            write_bodies=found.write_bodies, reclaim=found.reclaim, probed_at=timezone.now(),
            base_url=self.run.base_url, simulated=self.run.simulated)

    def report(self, before, after):
        conventions = self.conventions()
        lines = [
            f"derouter at {self.run.base_url}" + (" (our simulator)" if self.run.simulated else ""),
            f"Amounts (*Virtual): {describe_amounts(conventions)}",
            f"Markup (displayMultiplier): {describe_multiplier(conventions)}",
            f"Rate limits: {describe_limits(conventions)}",
            f"Write answers: {describe_writes(conventions)}",
            f"Reclaim (reduceBudgetVirtual): {describe_reclaim(conventions)}",
            f"Balance available before {before}, after {after}"
            + (" (unchanged)" if before == after else f" (changed by {after - before}: something else moved it)"),
            "Evidence:",
            *(f"  {name}: {text}" for name, text in self.found.evidence.items()),
        ]
        return "\n".join(lines)


def describe_amounts(conventions):
    if conventions.amounts == CUSTOMER:
        return _("in the customer's units (real dollars times the key's multiplier)")
    return _("in real dollars of your balance")


def describe_multiplier(conventions):
    later = {APPLIED: _("applied"), IGNORED: _("ignored"), REFUSED: _("refused")}.get(conventions.multiplier_put, "")
    return {
        ANYTIME: _("set at creation and changed later"),
        AT_CREATION: _("set only at creation (a change later is %(later)s)") % {"later": later},
        AFTER_CREATION: _("not kept at creation, only by a change after it"),
        NEVER: _("never kept: every key shows its customer your cost"),
    }[conventions.multiplier]


def describe_limits(conventions):
    return _("rpm settable per key") if conventions.limits_settable else _("fixed (60 rpm / 5 concurrent)")


def describe_writes(conventions):
    return ", ".join(
        (_("%(write)s %(status)s") if conventions.write_bodies.get(write) else _("%(write)s %(status)s without body"))
        % {"write": write, "status": status}
        for write, status in sorted(conventions.write_statuses.items(), key=lambda item: WRITES.index(item[0])))


def describe_reclaim(conventions):
    return {APPLIED: _("supported"), IGNORED: _("ignored (answered success, nothing moved)"),
            REFUSED: _("refused")}.get(conventions.reclaim, _("not probed"))


def run_probe(say=None):
    """Run the probe; returns the ProbeRun (outcome OK) or raises ProbeFailed (the run says what is left)."""
    return Probe(say).execute()
