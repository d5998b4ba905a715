import { useRecipes, type RecipeCollection } from "../db";

export function RecipeView({ recipes, id }: { recipes: RecipeCollection; id: string }) {
  const recipe = useRecipes(recipes).find((r) => r.id === id);
  if (!recipe) return <p data-testid="recipe-missing">Waiting for this recipe to sync…</p>;
  return (
    <article className="card" data-testid="recipe-view" data-recipe-id={recipe.id} data-version={recipe.version ?? ""}>
      <h2 data-testid="recipe-title">{recipe.title}</h2>
      <p data-testid="recipe-description">{recipe.description}</p>
      <p>
        {recipe.visibility === "PUBLIC" ? "Public" : "Private"} · by {recipe.ownerId ?? "you"}
        {recipe.servings ? ` · serves ${recipe.servings}` : ""}
        {recipe.version ? ` · version ${recipe.version}` : " · not synced yet"}
      </p>
      <p>{(recipe.tags ?? []).map((t) => `#${t}`).join(" ")}</p>
      <h3>Ingredients</h3>
      <ul data-testid="recipe-ingredients">
        {(recipe.ingredients ?? []).map((i, n) => (
          <li key={n}>{[i.quantity, i.unit, i.name].filter((x) => x != null).join(" ")}</li>
        ))}
      </ul>
      <h3>Steps</h3>
      <ol>
        {(recipe.steps ?? []).map((s, n) => (
          <li key={n}>{s}</li>
        ))}
      </ol>
      <div className="actions">
        <a href={`#/edit/${recipe.id}`} data-testid="edit">
          Edit
        </a>
        <a href="#/">Back</a>
      </div>
    </article>
  );
}
