"""A selected label's name is black or white by contrast, whatever colour a manager picks;
a colour too pale to see on a card is flagged, and the labels page says so."""

import itertools

import pytest
from django.template import Context, Template

from apps.projects.colours import BLACK, WHITE, contrast_ratio, hard_to_see, relative_luminance, text_colour_on
from apps.projects.models import LABEL_PALETTE, Label
from tests.helpers import client_for


def test_luminance_and_contrast_match_the_wcag_reference_values():
    assert relative_luminance("#000000") == 0
    assert relative_luminance("#ffffff") == pytest.approx(1)
    assert contrast_ratio("#000000", "#ffffff") == pytest.approx(21)
    # WebAIM's checker: #767676 on white is the lightest grey that passes 4.5:1.
    assert contrast_ratio("#767676", "#ffffff") == pytest.approx(4.54, abs=0.01)
    assert contrast_ratio("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)


def test_dark_colours_take_white_text_and_light_ones_black():
    assert text_colour_on("#1e3a8a") == WHITE
    assert text_colour_on("#facc15") == BLACK
    assert text_colour_on("#16a34a") == BLACK  # green-600: 6.4:1 with black, 3.3:1 with white


def test_the_chosen_text_reaches_4_5_to_1_on_every_colour():
    # Every colour of a 16-step grid over each channel (4,096 colours), greys and pure hues included.
    steps = [f"{v:02x}" for v in range(0, 256, 17)]
    for r, g, b in itertools.product(steps, repeat=3):
        colour = f"#{r}{g}{b}"
        assert contrast_ratio(colour, text_colour_on(colour)) >= 4.5, colour


def test_pale_colours_are_hard_to_see_and_the_palette_is_not():
    assert hard_to_see("#facc15") and hard_to_see("#ffffff") and hard_to_see("#ca8a04")
    assert not hard_to_see("#2563eb")
    assert [colour for colour in LABEL_PALETTE if hard_to_see(colour)] == []


def test_the_template_filters_fall_back_on_what_is_not_a_colour():
    template = Template("{% load quorum %}{{ c|text_on }} {{ c|hard_to_see }}")

    assert template.render(Context({"c": "#facc15"})) == "#000000 True"
    assert template.render(Context({"c": "red"})) == "#ffffff False"


def test_the_labels_page_warns_of_a_colour_too_pale_to_see(cast):
    Label.objects.filter(pk=cast.labels["Science"].pk).update(color="#fde047")

    html = client_for(cast.manager).get(f"/projects/{cast.project.pk}/labels/").content.decode()

    warning = html[html.index("colour-warning") : html.index("</ul>", html.index("colour-warning"))]
    assert "Science" in warning and "#fde047" in warning and "less than 3:1" in warning
    assert "World" not in warning


def test_the_labels_page_is_quiet_when_every_colour_reads(cast):
    assert "colour-warning" not in client_for(cast.manager).get(f"/projects/{cast.project.pk}/labels/").content.decode()
