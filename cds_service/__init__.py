"""osteo-cds: a CDS Hooks 2.0 service for the 2020 Chinese consensus on imaging/BMD diagnosis."""

__version__ = "0.1.0"

# The revision of ../shared/CONSENSUS-RULES.md these rules implement (its header "Revision YYYY-MM-DD");
# every card names it beside the service version, so a card can be traced to the rule text behind it.
RULESET_REVISION = "2026-12-07"

CONSENSUS_REFERENCE = (
    "骨质疏松的影像学及骨密度诊断专家共识. Chin J Radiol 2020;54(8):745-752. "
    "DOI 10.3760/cma.j.cn112149-20200331-00485"
)
CONSENSUS_URL = "https://doi.org/10.3760/cma.j.cn112149-20200331-00485"
