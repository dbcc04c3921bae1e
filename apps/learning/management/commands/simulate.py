"""``manage.py simulate``: active-learning campaigns on a labelled pool and test set (the
comparison ``bench/active_learning.py`` prints; both call ``campaign.campaigns_report``), e.g.

    python manage.py simulate --pool pool.csv --test test.csv --budget 600 --strategies margin,mix
"""

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from apps.learning.campaign import DEFAULT_STRATEGIES, CampaignOptions, campaigns_report


class Command(BaseCommand):
    help = "Simulate active-learning campaigns on a labelled CSV pool and test set (header: label,text)."

    def add_arguments(self, parser: CommandParser) -> None:
        out = Path(settings.VAR_DIR) / "simulate"
        parser.add_argument("--pool", type=Path, required=True, help="CSV with a header label,text")
        parser.add_argument("--test", type=Path, required=True, help="CSV with a header label,text")
        parser.add_argument("--budget", type=int, default=1000)
        parser.add_argument("--batch", type=int, default=50)
        parser.add_argument("--start", type=int, default=50)
        parser.add_argument("--seeds", default="0,1,2")
        parser.add_argument("--noise", type=float, default=0.0, help="share of wrong simulated answers")
        parser.add_argument("--strategies", default=DEFAULT_STRATEGIES)
        parser.add_argument("--cache", type=Path, default=out / "cache")
        parser.add_argument("--plot", type=Path, default=out / "curves.png")
        parser.add_argument("--cores", type=int, default=None)
        parser.add_argument("--round-items", dest="round_items", type=int, default=100_000)

    def handle(self, *args: Any, **options: Any) -> None:
        fields = CampaignOptions.__dataclass_fields__
        campaigns_report(CampaignOptions(**{k: v for k, v in options.items() if k in fields}), out=self.stdout)
