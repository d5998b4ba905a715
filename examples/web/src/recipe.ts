// A recipe as the app holds it (RxDB document = the server's RecipeSyncDoc) and as the editor
// shows it (a form of plain strings).

export interface Ingredient {
  name: string;
  quantity?: number | null;
  unit?: string | null;
  note?: string | null;
}

export type Visibility = "PRIVATE" | "PUBLIC";

export interface Recipe {
  id: string;
  title: string;
  description?: string;
  ingredients?: Ingredient[];
  steps?: string[];
  tags?: string[];
  servings?: number | null;
  prepMinutes?: number | null;
  cookMinutes?: number | null;
  imageUrl?: string | null;
  collaborators?: string[];
  visibility?: Visibility;
  ownerId?: string; // server-owned: absent until the server's copy arrives
  version?: number;
  updatedAt?: number | string;
  pending?: boolean; // local only: edited here, not yet confirmed by the server
}

/** The fields the editor changes, as the form shows them. */
export interface RecipeForm {
  title: string;
  description: string;
  tags: string;
  servings: string;
  ingredients: string;
  steps: string;
  visibility: Visibility;
}

export type FormField = keyof RecipeForm;

export const FORM_FIELDS: { field: FormField; label: string }[] = [
  { field: "title", label: "Title" },
  { field: "description", label: "Description" },
  { field: "tags", label: "Tags" },
  { field: "servings", label: "Servings" },
  { field: "ingredients", label: "Ingredients" },
  { field: "steps", label: "Steps" },
  { field: "visibility", label: "Visibility" },
];

const ingredientLine = (i: Ingredient) =>
  [i.quantity ?? "", i.unit ?? "", i.name].join(" ").trim();

/** "200 g Flour" -> {quantity: 200, unit: "g", name: "Flour"}; "Salt" -> {name: "Salt"}. */
function parseIngredient(line: string): Ingredient {
  const match = /^(\d+(?:[.,]\d+)?)\s+(?:(g|kg|ml|l|tsp|tbsp|cup|cups|pinch)\s+)?(.+)$/i.exec(line);
  if (!match) return { name: line };
  return { name: match[3], quantity: Number(match[1].replace(",", ".")), unit: match[2] ?? null };
}

const lines = (text: string) =>
  text
    .split("\n")
    .map((s) => s.trim())
    .filter(Boolean);

export function toForm(recipe: Recipe): RecipeForm {
  return {
    title: recipe.title,
    description: recipe.description ?? "",
    tags: (recipe.tags ?? []).join(", "),
    servings: recipe.servings == null ? "" : String(recipe.servings),
    ingredients: (recipe.ingredients ?? []).map(ingredientLine).join("\n"),
    steps: (recipe.steps ?? []).join("\n"),
    visibility: recipe.visibility ?? "PRIVATE",
  };
}

/** The form as the fields of RecipeInput / RecipePatch / RecipeSyncDoc. */
export function fromForm(form: RecipeForm) {
  return {
    title: form.title.trim(),
    description: form.description.trim(),
    tags: form.tags
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean),
    servings: form.servings.trim() ? Number(form.servings) : null,
    ingredients: lines(form.ingredients).map(parseIngredient),
    steps: lines(form.steps),
    visibility: form.visibility,
  };
}

export const emptyForm = (): RecipeForm => toForm({ id: "", title: "" });

export const newId = () => crypto.randomUUID().replace(/-/g, "");

/** Prefix search over title, tags and ingredient names, like the server's `recipes(search:)`. */
export function matches(recipe: Recipe, search: string): boolean {
  const words = search.toLowerCase().split(/\s+/).filter(Boolean);
  const text = [recipe.title, ...(recipe.tags ?? []), ...(recipe.ingredients ?? []).map((i) => i.name)]
    .join(" ")
    .toLowerCase()
    .split(/[^\p{L}\p{N}]+/u);
  return words.every((w) => text.some((t) => t.startsWith(w)));
}
