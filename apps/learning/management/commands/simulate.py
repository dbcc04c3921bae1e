"""``manage.py simulate``: active-learning campaigns on a labelled pool and test set (the
comparison ``bench/active_learning.py`` prints; both call ``campaign.campaigns_report``), e.g.

    python manage.py simulate --pool pool.csv --test test.csv --budget 600 --strategies margin,mix
"""

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from apps.learning.campaign import CampaignOptions, campaign_arguments, campaigns_report


class Command(BaseCommand):
    help = "Simulate active-learning campaigns on a labelled CSV pool and test set (header: label,text)."

    def add_arguments(self, parser: CommandParser) -> None:
        campaign_arguments(parser, pool=None, test=None, out=Path(settings.VAR_DIR) / "simulate")

    def handle(self, *args: Any, **options: Any) -> None:
        fields = CampaignOptions.__dataclass_fields__
        campaigns_report(CampaignOptions(**{k: v for k, v in options.items() if k in fields}), out=self.stdout)
