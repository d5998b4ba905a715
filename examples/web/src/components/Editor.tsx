import { CombinedGraphQLErrors } from "@apollo/client";
import { useMutation } from "@apollo/client/react";
import { useEffect, useState, type FormEvent } from "react";

import { CREATE, PATCH } from "../apollo";
import { useAuth } from "../auth";
import { saveLocally, useConnection, type RecipeCollection } from "../db";
import { emptyForm, FORM_FIELDS, fromForm, newId, toForm, type Recipe, type RecipeForm } from "../recipe";
import { ConflictView } from "./ConflictView";

type Saved = { __typename: "Recipe" } & Recipe;
type Conflict =
  | { __typename: "VersionConflict"; current: Recipe | null }
  | { __typename: "MergeConflict"; fields: string[]; current: Recipe };

/** The fields of `form` that differ from `base`, as a RecipePatch. */
function patchOf(form: RecipeForm, base: RecipeForm) {
  const values = fromForm(form) as Record<string, unknown>;
  const changed = FORM_FIELDS.filter(({ field }) => form[field] !== base[field]);
  return Object.fromEntries(changed.map(({ field }) => [field, values[field]]));
}

/**
 * Online, saves through Apollo: `patchRecipe` as of the version the editor opened (the server
 * merges concurrent edits of other fields; a clash on the same field is a MergeConflict shown
 * side by side). Offline or with an expired session, saves into RxDB, which pushes it later.
 */
export function Editor({ recipes, id }: { recipes: RecipeCollection; id: string | null }) {
  const [base, setBase] = useState<Recipe | null>(null); // what the editor opened (its version)
  const [form, setForm] = useState<RecipeForm | null>(id ? null : emptyForm());
  const [conflict, setConflict] = useState<{ mine: RecipeForm; current: Recipe } | null>(null);
  const [error, setError] = useState("");
  const connection = useConnection();
  const { expired } = useAuth();
  const online = connection === "online" && !expired;
  const [create] = useMutation<{ upsertRecipe: Saved | Conflict }>(CREATE);
  const [patch] = useMutation<{ patchRecipe: Saved | Conflict }>(PATCH);

  useEffect(() => {
    if (!id) return;
    void recipes.findOne(id).exec().then((doc) => {
      const recipe = doc?.toJSON() as Recipe | undefined;
      if (recipe) {
        setBase(recipe);
        setForm(toForm(recipe));
      }
    });
  }, [recipes, id]);

  if (!form) return <p>Loading…</p>;
  const done = (recipeId: string) => (location.hash = `#/recipe/${recipeId}`);

  /** Save `mine` over `against` (the version it is based on); returns false on a conflict. */
  async function save(mine: RecipeForm, against: Recipe | null) {
    const recipeId = against?.id ?? id ?? newId();
    const keepLocally = async () => {
      // RxDB keeps it and pushes it when it can.
      await saveLocally(recipes, { ...(against ?? { id: recipeId }), ...fromForm(mine), id: recipeId });
      done(recipeId);
    };
    if (!online || (against && !against.version)) return keepLocally(); // offline, or not synced yet
    const changes = against ? patchOf(mine, toForm(against)) : {};
    if (against && !Object.keys(changes).length) return done(recipeId);
    try {
      const result = against
        ? (await patch({ variables: { id: recipeId, baseVersion: against.version, patch: changes } }))
            .data?.patchRecipe
        : (await create({ variables: { input: { id: recipeId, ...fromForm(mine) } } })).data
            ?.upsertRecipe;
      if (result?.__typename === "Recipe") return done(recipeId);
      if (result?.current) return setConflict({ mine, current: result.current });
      setError("This recipe was deleted meanwhile.");
    } catch (failure) {
      // A refused write (invalid input, forbidden) is shown; anything else (the network went
      // away, the token was refused) keeps the edit locally instead.
      if (CombinedGraphQLErrors.is(failure)) return setError(failure.message);
      return keepLocally();
    }
  }

  function submit(event: FormEvent) {
    event.preventDefault();
    if (!form!.title.trim()) return setError("A recipe needs a title.");
    void save(form!, base);
  }

  if (conflict) {
    return (
      <ConflictView
        mine={conflict.mine}
        current={conflict.current}
        onResolve={(merged) => {
          setConflict(null);
          setBase(conflict.current); // retry as of the version now stored
          setForm(merged);
          void save(merged, conflict.current);
        }}
        onDiscard={() => done(conflict.current.id)}
      />
    );
  }

  const field = (name: keyof RecipeForm, multiline = false) => {
    const props = {
      id: name,
      "data-testid": `field-${name}`,
      value: form[name],
      onChange: (e: { target: { value: string } }) => setForm({ ...form, [name]: e.target.value }),
    };
    return multiline ? <textarea {...props} /> : <input {...props} />;
  };

  return (
    <form className="card" onSubmit={submit} data-testid="editor">
      <h2>{id ? "Edit recipe" : "New recipe"}</h2>
      <label htmlFor="title">Title</label>
      {field("title")}
      <label htmlFor="description">Description</label>
      {field("description", true)}
      <label htmlFor="tags">Tags (comma-separated)</label>
      {field("tags")}
      <label htmlFor="servings">Servings</label>
      {field("servings")}
      <label htmlFor="ingredients">Ingredients (one per line, e.g. "200 g Flour")</label>
      {field("ingredients", true)}
      <label htmlFor="steps">Steps (one per line)</label>
      {field("steps", true)}
      <label htmlFor="visibility">Visibility</label>
      <select
        id="visibility"
        data-testid="field-visibility"
        value={form.visibility}
        onChange={(e) => setForm({ ...form, visibility: e.target.value as RecipeForm["visibility"] })}
      >
        <option value="PRIVATE">Private</option>
        <option value="PUBLIC">Public</option>
      </select>
      {error && <p className="error" data-testid="editor-error">{error}</p>}
      <div className="actions">
        <button type="submit" data-testid="save">
          {online ? "Save" : "Save on this device"}
        </button>
        <a href={id ? `#/recipe/${id}` : "#/"}>Cancel</a>
      </div>
    </form>
  );
}
