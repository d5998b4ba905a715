import { useState } from "react";

import { useRecipes, type RecipeCollection } from "../db";
import { matches } from "../recipe";

/** Every local recipe (RxDB keeps them in step with the server), filtered as you type. */
export function RecipeList({ recipes }: { recipes: RecipeCollection }) {
  const [search, setSearch] = useState("");
  const shown = useRecipes(recipes).filter((r) => matches(r, search));
  return (
    <section data-testid="recipe-list">
      <div className="actions">
        <input
          data-testid="search"
          placeholder="Search title, tags, ingredients"
          value={search}
          onChange={(e) => setSearch(e.target.value)}
        />
        <a href="#/new" data-testid="new-recipe">
          New&nbsp;recipe
        </a>
      </div>
      <ul className="recipes">
        {shown.map((recipe) => (
          <li key={recipe.id} className="card" data-testid="recipe-item" data-id={recipe.id}>
            <a href={`#/recipe/${recipe.id}`}>{recipe.title}</a>
            {recipe.pending && <span className="pending">not synced yet</span>}
            <div>{(recipe.tags ?? []).join(", ")}</div>
          </li>
        ))}
      </ul>
      {!shown.length && <p data-testid="empty">No recipes{search && " match"}.</p>}
    </section>
  );
}
