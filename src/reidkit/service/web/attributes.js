// Attribute chips: describe a person (gender, clothing colours, bags, ...) to search without a photo, or to narrow
// a photo or track search. The choices come from GET /attributes: the store's model's attributes, or none, and then
// the chips stay hidden. One value per group; a second click on the chosen value takes it back.
"use strict";

const described = new Map(); // group name -> chosen value

async function loadAttributes() {
  const box = $("describe");
  described.clear();
  showDescription();
  try {
    const { groups } = await apiJson("/attributes");
    box.hidden = groups.length === 0;
    const list = $("attribute-chips");
    list.replaceChildren();
    groups.forEach((group) => {
      const row = document.createElement("div");
      row.className = "chip-row";
      row.append(line("chip-group", group.name.replace("_", " ")));
      group.values.filter((value) => value !== "other").forEach((value) => {
        const chip = document.createElement("button");
        chip.type = "button";
        chip.className = "chip";
        chip.textContent = value;
        chip.title = group.question + ": " + value;
        chip.dataset.group = group.name;
        chip.dataset.value = value;
        chip.setAttribute("aria-pressed", "false");
        chip.addEventListener("click", () => toggleChip(chip.dataset.group, chip.dataset.value));
        row.append(chip);
      });
      list.append(row);
    });
  } catch (error) {
    box.hidden = true;
    report($("search-status"), error);
  }
}

function toggleChip(group, value) {
  if (described.get(group) === value) described.delete(group);
  else described.set(group, value);
  showDescription();
}

function showDescription() {
  document.querySelectorAll(".chip").forEach((chip) => {
    chip.setAttribute("aria-pressed", String(described.get(chip.dataset.group) === chip.dataset.value));
  });
  $("describe-text").textContent = describedText() || "nobody described";
}

function describedText() {
  return [...described].map(([group, value]) => group + "=" + value).join(" ");
}

function appendDescription(form) {
  described.forEach((value, group) => form.append("attributes", group + "=" + value));
  return form;
}

// A hit's attributes in a few words, as the command line's table shows them (search_report.attribute_summary):
// the values the model is fairly sure of, yes/no groups by name when yes.
function attributeSummary(attributes) {
  if (!attributes) return "";
  return Object.entries(attributes)
    .filter(([, guess]) => guess.confidence >= 0.6 && guess.value !== "no" && guess.value !== "other")
    .map(([name, guess]) => (guess.value === "yes" ? name : name.replace("_", " ") + " " + guess.value))
    .join(", ");
}
