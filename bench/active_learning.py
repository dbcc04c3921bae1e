"""Active-learning benchmark: does labelling what the model needs pay?

    python bench/active_learning.py                      # ../shared/data/agnews pool.csv and dev.csv
    python bench/active_learning.py --pool P.csv --test T.csv --budget 1000 --batch 50 --start 50

Both CSVs have a header ``label,text``. The script
1. embeds both sets with the default backbone (and measures texts/s, fp32 and int8);
2. runs a campaign per strategy with simulated annotators (see apps/learning/campaign.py),
   averaged over ``--seeds``, printing accuracy and macro-F1 after every batch;
3. prints, per strategy, the labels needed to reach 98% of the accuracy of a model trained
   on the whole pool and the saving against random sampling; the reference row is the
   afternoon baseline (raw mean-pooled embeddings, logistic regression, margin, batches of 50
   from 50 random labels); the target is 98% of that baseline's whole-pool accuracy;
4. times one active-learning round on 100,000 cached items (retrain the head, re-score,
   pick a batch); and saves the curves as a PNG (``--plot``).
"""

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from apps.learning.campaign import CampaignOptions, campaign_arguments, campaigns_report  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "agnews"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    campaign_arguments(parser, pool=DATA / "pool.csv", test=DATA / "dev.csv", out=ROOT / "bench" / "out")
    campaigns_report(CampaignOptions(**vars(parser.parse_args(argv))))


if __name__ == "__main__":
    main()
