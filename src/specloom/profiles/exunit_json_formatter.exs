# An ExUnit formatter that writes one JSON document when the suite finishes,
# shaped like mocha's JSON reporter (stats, tests, passes, failures, pending;
# each test has title, fullTitle, file, line, duration and err).
#
# The elixir profile passes this file's text to `elixir -e` ahead of
# `-S mix test`, so a project needs no dependency (Hex may be unreachable and
# Elixir before 1.18 has no JSON module): the module defines itself in the VM
# and mix is told to use it with `--formatter`. The report goes to the file
# named by EXUNIT_JSON_OUTPUT.
defmodule Specloom.ExUnitJSONFormatter do
  @moduledoc false
  use GenServer

  @impl true
  def init(opts) do
    {:ok, %{seed: opts[:seed], started: System.monotonic_time(:microsecond), tests: [], suites: 0}}
  end

  @impl true
  def handle_cast({:module_finished, %{state: {:failed, _}} = module}, state) do
    # setup_all failed: its tests arrive as :invalid; remember why.
    failures = elem(module.state, 1)
    {:noreply, Map.put(state, {:module_failure, module.name}, failures) |> Map.update!(:suites, &(&1 + 1))}
  end

  def handle_cast({:module_finished, _module}, state) do
    {:noreply, Map.update!(state, :suites, &(&1 + 1))}
  end

  def handle_cast({:test_finished, %ExUnit.Test{} = test}, state) do
    {:noreply, %{state | tests: [test | state.tests]}}
  end

  def handle_cast({:suite_finished, times}, state) do
    write(report(state, times))
    {:noreply, state}
  end

  def handle_cast(_event, state), do: {:noreply, state}

  defp write(document) do
    path = System.get_env("EXUNIT_JSON_OUTPUT") || "exunit-report.json"
    File.mkdir_p!(Path.dirname(path))
    File.write!(path, encode(document))
  end

  defp report(state, times) do
    tests = state.tests |> Enum.reverse() |> Enum.map(&entry(&1, state))
    tests = Enum.reject(tests, &(&1["state"] == "excluded"))
    by_state = fn wanted -> Enum.filter(tests, &(&1["state"] in wanted)) end
    failures = by_state.(["failed", "invalid"])

    %{
      "stats" => %{
        "suites" => state.suites,
        "tests" => length(tests),
        "passes" => length(by_state.(["passed"])),
        "failures" => length(by_state.(["failed"])),
        "invalid" => length(by_state.(["invalid"])),
        "pending" => length(by_state.(["skipped"])),
        "duration" => duration_ms(times, state),
        "seed" => state.seed
      },
      "tests" => tests,
      "passes" => by_state.(["passed"]),
      "failures" => failures,
      "pending" => by_state.(["skipped"])
    }
  end

  defp duration_ms(%{run: run}, _state), do: run / 1000
  defp duration_ms(_times, state), do: (System.monotonic_time(:microsecond) - state.started) / 1000

  defp entry(%ExUnit.Test{} = test, state) do
    module = test.module |> inspect()
    name = to_string(test.name)

    %{
      "title" => name,
      "fullTitle" => "#{module}: #{name}",
      "file" => relative(test.tags[:file]),
      "line" => test.tags[:line],
      "duration" => div(test.time, 1000),
      "state" => state_name(test.state),
      "err" => err(test, state)
    }
  end

  defp state_name(nil), do: "passed"
  defp state_name({:failed, _}), do: "failed"
  defp state_name({:invalid, _}), do: "invalid"
  defp state_name({:skipped, _}), do: "skipped"
  defp state_name({:excluded, _}), do: "excluded"

  defp err(%ExUnit.Test{state: {:failed, failures}} = test, _state), do: failure(test, failures)

  defp err(%ExUnit.Test{state: {:invalid, module}} = test, state) do
    failures = Map.get(state, {:module_failure, module.name}, [])
    Map.put(failure(test, failures), "message", "setup_all failed: " <> messages(failures))
  end

  defp err(_test, _state), do: %{}

  defp failure(test, failures) do
    stack = failures |> Enum.flat_map(fn {_kind, _reason, stack} -> stack end)
    {file, line} = location(test, stack)

    %{
      "message" => messages(failures),
      "file" => file,
      "line" => line,
      "stack" => Exception.format_stacktrace(stack)
    }
  end

  defp messages(failures) do
    failures |> Enum.map(&message/1) |> Enum.join("\n\n")
  end

  defp message({_kind, %ExUnit.AssertionError{} = error, _stack}) do
    no_value = ExUnit.AssertionError.no_value()

    [
      error.message,
      if(error.expr != no_value, do: "code:  " <> code(error.expr)),
      if(error.left != no_value, do: "left:  " <> inspect(error.left)),
      if(error.right != no_value, do: "right: " <> inspect(error.right))
    ]
    |> Enum.reject(&is_nil/1)
    |> Enum.join("\n")
  end

  defp message({kind, reason, stack}), do: Exception.format_banner(kind, reason, stack)

  defp code(expr) when is_binary(expr), do: expr
  defp code(expr), do: Macro.to_string(expr)

  # The frame of the test function itself is where the assertion failed;
  # without one (a crash deeper down), the test's own line.
  defp location(test, stack) do
    frame =
      Enum.find_value(stack, fn
        {module, _fun, _arity, info} when module == test.module -> info
        _ -> nil
      end)

    case frame do
      nil -> {relative(test.tags[:file]), test.tags[:line]}
      info -> {relative(info[:file] && to_string(info[:file])), info[:line]}
    end
  end

  defp relative(nil), do: nil
  defp relative(path), do: Path.relative_to_cwd(to_string(path))

  # A minimal JSON encoder: Elixir before 1.18 has none built in.
  defp encode(nil), do: "null"
  defp encode(true), do: "true"
  defp encode(false), do: "false"
  defp encode(value) when is_integer(value), do: Integer.to_string(value)
  defp encode(value) when is_float(value), do: Float.to_string(value)
  defp encode(value) when is_atom(value), do: encode(Atom.to_string(value))

  defp encode(value) when is_binary(value) do
    text = if String.valid?(value), do: value, else: inspect(value)
    ["\"", Enum.map(String.to_charlist(text), &escape/1), "\""] |> IO.iodata_to_binary()
  end

  defp encode(value) when is_list(value) do
    "[" <> Enum.map_join(value, ",", &encode/1) <> "]"
  end

  defp encode(value) when is_map(value) do
    body = Enum.map_join(value, ",", fn {key, item} -> encode(to_string(key)) <> ":" <> encode(item) end)
    "{" <> body <> "}"
  end

  defp encode(value), do: encode(inspect(value))

  defp escape(?"), do: "\\\""
  defp escape(?\\), do: "\\\\"
  defp escape(?\n), do: "\\n"
  defp escape(?\r), do: "\\r"
  defp escape(?\t), do: "\\t"
  defp escape(char) when char < 0x20, do: "\\u" <> String.pad_leading(Integer.to_string(char, 16), 4, "0")
  defp escape(char), do: <<char::utf8>>
end
