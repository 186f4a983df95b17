"""Readings of derouter that the reference leaves open, each playable by a runsim option.

The default is the reference's reading (derouter-api.md): amounts in real dollars, the multiplier
settable at any time, rpm settable, writes answering 200 with the key, reclaim supported. The
options play what derouter's own guide and its users describe instead (derouter-public-pages.md).
"""

from dataclasses import asdict, dataclass
from decimal import ROUND_HALF_UP, Decimal

from .store import MULTIPLIER_SCALE

REAL, CUSTOMER = "real", "customer"
APPLIED, IGNORED, REFUSED = "applied", "ignored", "refused"
WRITE_ANSWERS = ("reference", "created", "empty")
FIXED_RPM_LIMIT = 60
FIXED_CONCURRENT_LIMIT = 5


@dataclass(frozen=True)
class Conventions:
    """How this simulator answers where the reference is silent or the guide differs."""

    amounts: str = REAL                  # *Virtual in real dollars, or in the customer's (times the multiplier)
    multiplier_at_creation: str = APPLIED    # displayMultiplier in POST /sub-keys: applied or ignored
    multiplier_after_creation: str = APPLIED  # in PUT /sub-keys/:id: applied, ignored or refused (400)
    fixed_limits: bool = False           # rpmLimit ignored on POST and PUT: always 60 rpm / 5 concurrent
    write_answers: str = "reference"     # reference: 200 + JSON; created: 201 + JSON on POST, 204 on PUT/DELETE;
                                         # empty: 201/204 with no body at all
    reclaim: str = APPLIED               # reduceBudgetVirtual in PUT: applied, ignored or refused (400)
    cloudflare_faults: Decimal = Decimal(0)  # share of API requests answered by a Cloudflare fault

    def as_dict(self):
        return {**asdict(self), "cloudflare_faults": str(self.cloudflare_faults)}

    def to_wire(self, micro, multiplier):
        """Real micro-dollars as the Decimal a *Virtual field carries under this convention."""
        if self.amounts == CUSTOMER:
            return (Decimal(micro * multiplier).scaleb(-10)).quantize(Decimal("0.000001"), ROUND_HALF_UP)
        return Decimal(micro).scaleb(-6)

    def from_wire(self, micro, multiplier):
        """A *Virtual amount (in micro-units as given) as real micro-dollars under this convention."""
        if self.amounts == CUSTOMER:
            numerator = micro * MULTIPLIER_SCALE
            return (2 * numerator + multiplier) // (2 * multiplier)  # rounded half up to a micro-dollar
        return micro

    def write_status(self, method):
        """The status a successful write answers, and whether a body goes with it."""
        if self.write_answers == "reference":
            return 200, True
        if method == "POST":
            return 201, self.write_answers == "created"
        return 204, False
