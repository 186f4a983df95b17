"""The doors a customer can use derouter through, with the reseller's base URLs (Branding).

derouter's host serves the OpenAI API under /openai/v1 and the Anthropic Messages API under
/proxy/v1 (the Anthropic SDK and Claude Code are given the base .../proxy and add /v1/messages
themselves); its direct host (no Cloudflare in front: 600 s instead of 100 s) serves image
generation and long requests. The quick starts of the portal and of the console's once-shown key
are built from these.
"""

from dataclasses import dataclass

OPENAI_PATH = "/openai/v1"
ANTHROPIC_PATH = "/proxy"


@dataclass(frozen=True)
class Doors:
    openai_base: str     # OpenAI SDK, curl, Codex CLI: ends in /openai/v1
    anthropic_base: str  # Anthropic SDK and Claude Code (ANTHROPIC_BASE_URL): ends in /proxy
    direct_base: str     # the direct host's OpenAI base; empty: not offered


def get_doors(branding):
    """The base URLs of each door under this branding (an unsaved default Branding gives derouter's)."""
    openai_base = branding.inference_base.rstrip("/")
    root = openai_base[:-len(OPENAI_PATH)] if openai_base.endswith(OPENAI_PATH) else openai_base
    return Doors(openai_base=openai_base, anthropic_base=root + ANTHROPIC_PATH,
                 direct_base=branding.direct_base.rstrip("/"))
